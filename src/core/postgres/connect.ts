import pg from 'pg';

import {SynapseError, errnoCode} from '../errors/index.js';
import {redact} from '../secrets/index.js';
import type {DatabaseTarget} from './database-target.js';
import {libpqWouldRetry} from './libpq-ssl.js';

const UNREACHABLE_ERRNO = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOENT', 'ECONNRESET']);

/**
 * Maps a pg (or libpq-reported) failure to the catalogue by errno or SQLSTATE class, with any
 * password removed: a missing database, a read-only server or a failed statement are not "unreachable".
 */
export function databaseError(error: unknown, target: DatabaseTarget, action: string): SynapseError {
  const code = errnoCode(error) ?? '';
  const reason = redact(error instanceof Error ? error.message : String(error), [target.password]);
  const cause = new Error(reason);
  const where = `unable to ${action} '${target.describe()}'`;
  if (UNREACHABLE_ERRNO.has(code) || code.startsWith('08') || code === '57P03') {
    return new SynapseError('E_DB_UNREACHABLE', {message: `${where}: server unreachable (${code ? `${code}: ` : ''}${reason})`, cause});
  }
  if (/CERT|SELF_SIGNED|ERR_TLS|ERR_SSL/.test(code)) {
    return new SynapseError('E_DB_UNREACHABLE', {
      message: `${where}: the server's certificate was refused (${code}: ${reason})`,
      suggestion: 'With sslmode=verify-ca or verify-full, give the CA that signed the server\'s certificate as sslrootcert (and, for verify-full, connect by the name the certificate carries); sslmode=require encrypts without checking it, as with psql.',
      cause,
    });
  }
  const missingRole = /role "(.+)" does not exist/.exec(reason)?.[1];
  if (code === '28000' && missingRole !== undefined) {
    // A fresh machine: no DATABASE_URL, so libpq's default, the operating-system user, which has no role.
    return new SynapseError('E_DB_AUTH', {
      message: `${where}: the server has no role ${JSON.stringify(missingRole)} (${reason})`,
      suggestion: `Point DATABASE_URL at a role that exists (e.g. DATABASE_URL=postgresql://postgres@localhost:5432/${target.database}), or create this one as the superuser: sudo -u postgres createuser --superuser ${/^[A-Za-z0-9_]+$/.test(missingRole) ? missingRole : '<role>'} (a backup needs to read every table; a restore also CREATEDB).`,
      cause,
    });
  }
  if (code.startsWith('28')) return new SynapseError('E_DB_AUTH', {message: `${where}: authentication failed (${reason})`, cause});
  // pg's words when the server asks for a password and none was given (libpq: "no password supplied").
  if (/client password must be a string|no password supplied|password must be provided/i.test(reason)) {
    return new SynapseError('E_DB_AUTH', {
      message: `${where}: the server asks for a password and none was given`,
      suggestion: 'Give the password in DATABASE_URL (percent-encoded), in PGPASSWORD, or in ~/.pgpass of the user that runs synapse-backup.',
      cause,
    });
  }
  if (code === '3D000') {
    return new SynapseError('E_DB_UNREACHABLE', {
      message: `${where}: ${reason}`,
      suggestion: 'Check the database name in DATABASE_URL (or PGDATABASE); create the database first if it is new.',
      cause,
    });
  }
  if (code === '25006') return new SynapseError('E_DB_READ_ONLY', {message: `${where}: the server is read-only (${reason})`, cause});
  if (code === '42501') return new SynapseError('E_DB_PRIVILEGE', {message: `${where}: ${reason}`, cause});
  if (/^[0-9A-Z]{5}$/.test(code)) return new SynapseError('E_DB_QUERY', {message: `${where}: ${reason} (SQLSTATE ${code})`, cause, details: {sqlstate: code}});
  return new SynapseError('E_DB_UNREACHABLE', {message: `${where}: ${reason}`, cause});
}

/** A connection made the way libpq makes it (sslmode and its fallbacks), so it agrees with pg_dump's. */
export async function connect(target: DatabaseTarget, action: string, options: {timeoutMs?: number} = {}): Promise<pg.Client> {
  const attempts = target.sslAttempts();
  for (const [index, ssl] of attempts.entries()) {
    const client = new pg.Client({...target.clientConfig(ssl), connectionTimeoutMillis: options.timeoutMs ?? 15_000});
    // An idle connection that dies (server restart) must not crash the process with an unhandled 'error'.
    client.on('error', () => {});
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => {});
      if (index + 1 < attempts.length && libpqWouldRetry(error, ssl)) continue;
      throw databaseError(error, target, action);
    }
  }
  throw new Error('no connection attempt was made');
}

export interface ServerInfo {
  readonly version: string;
  readonly versionNum: number;
  readonly major: number;
  readonly database: string;
}

export async function readServerInfo(target: DatabaseTarget): Promise<ServerInfo> {
  const client = await connect(target, 'connect to');
  try {
    const {rows} = await client.query<{version: string; num: string; db: string}>(
      "select current_setting('server_version') as version, current_setting('server_version_num') as num, current_database() as db",
    );
    const row = rows[0]!;
    const versionNum = Number(row.num);
    return {version: row.version.split(' ')[0]!, versionNum, major: Math.floor(versionNum / 10_000), database: row.db};
  } catch (error) {
    throw databaseError(error, target, 'query');
  } finally {
    await client.end().catch(() => {});
  }
}
