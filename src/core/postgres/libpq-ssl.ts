import {existsSync, readFileSync} from 'node:fs';
import {homedir} from 'node:os';
import path from 'node:path';
import type {ConnectionOptions} from 'node:tls';

import {SynapseError} from '../errors/index.js';

const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The SSL settings of a connection, read as libpq reads them: URL parameters, then PG* variables, then defaults. */
export interface SslSettings {
  readonly mode: SslMode;
  readonly rootCert: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
}

export function resolveSsl(parameters: URLSearchParams | undefined, env: Readonly<Record<string, string | undefined>>): SslSettings {
  const mode = parameters?.get('sslmode') ?? env.PGSSLMODE ?? 'prefer';
  if (!(SSL_MODES as readonly string[]).includes(mode)) {
    throw new SynapseError('E_CONFIG', {message: `unable to use sslmode '${mode}': libpq knows ${SSL_MODES.join(', ')}`, suggestion: 'Fix sslmode in DATABASE_URL or PGSSLMODE.'});
  }
  return {
    mode: mode as SslMode,
    rootCert: parameters?.get('sslrootcert') ?? env.PGSSLROOTCERT,
    cert: parameters?.get('sslcert') ?? env.PGSSLCERT,
    key: parameters?.get('sslkey') ?? env.PGSSLKEY,
  };
}

function readIfExists(file: string | undefined): string | undefined {
  return file && existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

/**
 * The `ssl` options of each connection attempt, in the order libpq makes them: `prefer` (libpq's
 * default) tries SSL without verifying, then a plain connection; `allow` the reverse; `require`
 * encrypts without verifying (verify-ca when a root certificate is given, as libpq does);
 * `verify-ca` checks the chain and `verify-full` the host name too, against the root certificate
 * (sslrootcert, else ~/.postgresql/root.crt). A Unix socket never uses SSL, as in libpq.
 */
export function sslAttempts(ssl: SslSettings, host: string): Array<false | ConnectionOptions> {
  if (host.startsWith('/') || ssl.mode === 'disable') return [false];
  const home = path.join(homedir(), '.postgresql');
  const clientCert = {
    ...(readIfExists(ssl.cert ?? path.join(home, 'postgresql.crt')) ? {cert: readIfExists(ssl.cert ?? path.join(home, 'postgresql.crt'))} : {}),
    ...(readIfExists(ssl.key ?? path.join(home, 'postgresql.key')) ? {key: readIfExists(ssl.key ?? path.join(home, 'postgresql.key'))} : {}),
  };
  const unverified: ConnectionOptions = {...clientCert, rejectUnauthorized: false};
  switch (ssl.mode) {
    case 'allow': {
      return [false, unverified];
    }
    case 'prefer': {
      return [unverified, false];
    }
    case 'require': {
      const ca = readIfExists(ssl.rootCert);
      return [ca ? {...clientCert, ca, checkServerIdentity: () => undefined} : unverified];
    }
    default: {
      const rootCert = ssl.rootCert ?? path.join(home, 'root.crt');
      const ca = readIfExists(rootCert);
      if (!ca) {
        throw new SynapseError('E_CONFIG', {
          message: `unable to use sslmode=${ssl.mode}: the root certificate '${rootCert}' does not exist`,
          suggestion: 'Give the CA certificate that signed the server\'s as sslrootcert in DATABASE_URL (or PGSSLROOTCERT), or put it at ~/.postgresql/root.crt, as psql needs too.',
        });
      }
      return [ssl.mode === 'verify-ca' ? {...clientCert, ca, checkServerIdentity: () => undefined} : {...clientCert, ca, rejectUnauthorized: true}];
    }
  }
}

/** Whether a failed attempt is one libpq would follow with its next one. */
export function libpqWouldRetry(error: unknown, attempt: false | ConnectionOptions): boolean {
  const message = error instanceof Error ? error.message : String(error);
  if (attempt !== false) return /does not support SSL/i.test(message);
  // `allow`: the server refused a plain connection (a hostssl-only pg_hba.conf).
  return (error as {code?: string}).code === '28000' || /no encryption/i.test(message);
}
