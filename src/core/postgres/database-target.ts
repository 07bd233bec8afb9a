import {existsSync} from 'node:fs';
import {userInfo} from 'node:os';
import path from 'node:path';
import type {ClientConfig} from 'pg';

import {SynapseError} from '../errors/index.js';
import {minimalChildEnvironment} from '../process/index.js';
import type {ConnectionOptions} from 'node:tls';
import {resolveSsl, sslAttempts} from './libpq-ssl.js';
import {serviceDefaults} from './pg-service.js';
import {Secret} from '../secrets/index.js';

type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_SOCKET_DIRECTORIES = ['/var/run/postgresql', '/tmp'];

/** A part of DATABASE_URL, percent-decoded; a stray '%' is a configuration error that says what to do. */
function decodeUrlPart(value: string, part: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new SynapseError('E_CONFIG', {
      message: `unable to use DATABASE_URL: its ${part} holds a '%' that does not start a percent-encoded character`,
      suggestion: 'Percent-encode special characters in DATABASE_URL: write % as %25, @ as %40, : as %3A, / as %2F (for example with: node -p "encodeURIComponent(process.argv[1])" \'the-password\').',
    });
  }
}

/** Variables that carry secrets: never handed on to child processes or plugins as they are. */
export const SECRET_VARIABLES = ['DATABASE_URL', 'PGPASSWORD', 'BACKUP_ENCRYPTION_KEY', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'] as const;

export function withoutSecrets(env: Env): Env {
  const clean: Record<string, string | undefined> = {...env};
  for (const name of SECRET_VARIABLES) delete clean[name];
  return clean;
}

/**
 * The database to back up or restore into, resolved once so that pg_dump, psql and the pg client
 * all reach the same server as the same user. The password travels to child processes only in
 * their environment (PGPASSWORD), never in argv.
 */
export class DatabaseTarget {
  readonly database: string;
  readonly password: Secret | undefined;
  readonly #url: URL | undefined;
  /** The environment as children get it: they read service files themselves. */
  readonly #env: Env;
  /** What our own connections fall back on where the URL says nothing: the service's settings over the environment. */
  readonly #defaults: Env;

  private constructor(url: URL | undefined, env: Env, database: string, password: Secret | undefined, defaults: Env = env) {
    this.#url = url;
    this.#env = withoutSecrets(env);
    this.#defaults = withoutSecrets(defaults);
    this.database = database;
    this.password = password;
  }

  /** From DATABASE_URL when set, otherwise the libpq defaults pg_dump itself would use. */
  static fromEnvironment(processEnv: Env): DatabaseTarget {
    const raw = processEnv.DATABASE_URL?.trim();
    let parsedUrl: URL | undefined;
    if (raw) {
      let url: URL;
      try {
        url = new URL(raw);
      } catch (error) {
        throw new SynapseError('E_CONFIG', {
          message: "unable to parse DATABASE_URL: it is not a valid URL",
          suggestion: 'Write DATABASE_URL as postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]; percent-encode special characters in the password.',
          cause: error instanceof Error ? new Error(error.message.replace(raw, '<DATABASE_URL>')) : undefined,
        });
      }
      if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
        throw new SynapseError('E_CONFIG', {message: `unable to use DATABASE_URL: scheme '${url.protocol}' is not postgresql:`});
      }
      parsedUrl = url;
    }
    // A service (service= in the URL, or PGSERVICE) sits between the URL and the environment, as in libpq.
    const service = parsedUrl?.searchParams.get('service') ?? processEnv.PGSERVICE;
    const env: Env = service ? {...processEnv, ...serviceDefaults(service, processEnv)} : processEnv;
    if (parsedUrl) {
      const url = parsedUrl;
      // A password may sit in the user info or in the query (?password=); it travels only as PGPASSWORD.
      const queryPassword = url.searchParams.get('password');
      url.searchParams.delete('password');
      if (url.searchParams.has('sslpassword')) {
        throw new SynapseError('E_CONFIG', {
          message: 'unable to use DATABASE_URL: it carries sslpassword, which libpq reads from no environment variable, so pg_dump could only get it on its command line, where other users can read it',
          suggestion: 'Remove sslpassword from DATABASE_URL: use a client key without a passphrase, readable only by the backup user (sslkey=...), or a pg_service.conf entry (PGSERVICE) that holds it.',
        });
      }
      const password = url.password ? new Secret(decodeUrlPart(url.password, 'password')) : queryPassword ? new Secret(queryPassword) : env.PGPASSWORD ? new Secret(env.PGPASSWORD) : undefined;
      url.password = '';
      const user = decodeUrlPart(url.username, 'user name') || url.searchParams.get('user') || env.PGUSER || userInfo().username;
      const database = decodeUrlPart(url.pathname.replace(/^\//, ''), 'database name') || url.searchParams.get('dbname') || env.PGDATABASE || user;
      return new DatabaseTarget(url, processEnv, database, password, env);
    }
    const user = env.PGUSER || userInfo().username;
    return new DatabaseTarget(undefined, processEnv, env.PGDATABASE || user, env.PGPASSWORD ? new Secret(env.PGPASSWORD) : undefined, env);
  }

  /** The same server and credentials, another database. */
  withDatabase(database: string): DatabaseTarget {
    if (!this.#url) return new DatabaseTarget(undefined, this.#env, database, this.password, this.#defaults);
    const url = new URL(this.#url.href);
    url.pathname = `/${encodeURIComponent(database)}`;
    url.searchParams.delete('dbname');
    return new DatabaseTarget(url, this.#env, database, this.password, this.#defaults);
  }

  /** `--dbname` for pg_dump and psql: a URL without its password, or a bare database name. */
  childConnectionArgs(): string[] {
    return [`--dbname=${this.#url ? this.#url.href : this.database}`];
  }

  /**
   * Connection options for pg_basebackup, whose `--dbname` is a connection string, never a bare
   * database name (which it could not parse); without a URL, libpq's PG* variables say where.
   */
  replicationConnectionArgs(): string[] {
    return this.#url ? [`--dbname=${this.#url.href}`] : [];
  }

  /**
   * Environment for pg_dump and psql: the minimal one, libpq's own PG* settings (service file,
   * SSL files, host...), and the password, when there is one, as PGPASSWORD: the only child
   * processes that ever get it.
   */
  childEnvironment(): Record<string, string> {
    const libpq: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.#env)) if (value !== undefined && name.startsWith('PG') && name !== 'PGPASSWORD') libpq[name] = value;
    return minimalChildEnvironment(this.#env, {PGAPPNAME: 'synapse-backup', ...libpq, ...(this.password ? {PGPASSWORD: this.password.reveal()} : {})});
  }

  /**
   * The `ssl` options of each attempt our own client makes, as libpq would make them (see
   * sslAttempts): node-pg's own reading of sslmode is stricter than libpq's, so that a server
   * pg_dump reaches with sslmode=require would refuse us.
   */
  sslAttempts(): Array<false | ConnectionOptions> {
    return sslAttempts(resolveSsl(this.#url?.searchParams, this.#defaults), this.#endpoint().host);
  }

  /**
   * Host, port and user as libpq picks them: the URL (its host= parameter for a socket directory),
   * then the service, then PG* variables, then a local socket, 5432 and the OS user.
   */
  #endpoint(): {host: string; port: number; user: string} {
    const url = this.#url;
    const port = url?.port || url?.searchParams.get('port') || this.#defaults.PGPORT || '5432';
    const urlHost = url ? url.searchParams.get('host') ?? decodeURIComponent(url.hostname).replace(/^\[(.*)\]$/, '$1') : '';
    const host = urlHost || this.#defaults.PGHOST || defaultSocketDirectory(port) || 'localhost';
    const user = (url ? decodeURIComponent(url.username) || url.searchParams.get('user') : '') || this.#defaults.PGUSER || userInfo().username;
    return {host, port: Number(port), user};
  }

  /**
   * Options for node-pg, spelled out field by field rather than as a connection string: node-pg
   * reads a URL by rules of its own (no service, no socket directory without a host, its own
   * sslmode), so it gets exactly what libpq would use. `ssl` is one of sslAttempts().
   */
  clientConfig(ssl: false | ConnectionOptions = false): ClientConfig {
    const {host, port, user} = this.#endpoint();
    const options = this.#url?.searchParams.get('options') ?? this.#defaults.PGOPTIONS;
    return {
      host,
      port,
      user,
      database: this.database,
      application_name: 'synapse-backup',
      ssl,
      ...(this.password ? {password: this.password.reveal()} : {}),
      ...(options ? {options} : {}),
    };
  }

  /** Where this points, for messages: no password. */
  describe(): string {
    if (this.#url) return this.#url.href;
    const {host, user} = this.#endpoint();
    return `database '${this.database}' as '${user}' via ${host}`;
  }
}

/** libpq's compiled-in default is a Unix socket; find the directory that holds one. */
function defaultSocketDirectory(port: string | undefined): string | undefined {
  return DEFAULT_SOCKET_DIRECTORIES.find((directory) => existsSync(path.join(directory, `.s.PGSQL.${port || 5432}`)));
}
