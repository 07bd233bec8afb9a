import pg from 'pg';

import {SynapseError, errnoCode} from '../errors/index.js';
import {redact} from '../secrets/index.js';
import type {DatabaseTarget} from './database-target.js';

const UNREACHABLE_ERRNO = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOENT', 'ECONNRESET']);

/** Maps a pg (or libpq-reported) failure to the catalogue, with any password removed. */
export function databaseError(error: unknown, target: DatabaseTarget, action: string): SynapseError {
  const code = errnoCode(error);
  const reason = redact(error instanceof Error ? error.message : String(error), [target.password]);
  const cause = new Error(reason);
  if (code && UNREACHABLE_ERRNO.has(code)) {
    return new SynapseError('E_DB_UNREACHABLE', {message: `unable to ${action} '${target.describe()}': server unreachable (${code}: ${reason})`, cause});
  }
  if (code === '28P01' || code === '28000') {
    return new SynapseError('E_DB_AUTH', {message: `unable to ${action} '${target.describe()}': authentication failed (${reason})`, cause});
  }
  if (code === '3D000') {
    return new SynapseError('E_DB_UNREACHABLE', {
      message: `unable to ${action} '${target.describe()}': ${reason}`,
      suggestion: 'Check the database name in DATABASE_URL (or PGDATABASE); create the database first if it is new.',
      cause,
    });
  }
  if (code === '42501') {
    return new SynapseError('E_DB_PRIVILEGE', {message: `unable to ${action} '${target.describe()}': ${reason}`, cause});
  }
  return new SynapseError('E_DB_UNREACHABLE', {message: `unable to ${action} '${target.describe()}': ${reason}`, cause});
}

export async function connect(target: DatabaseTarget, action: string): Promise<pg.Client> {
  const client = new pg.Client({...target.clientConfig(), connectionTimeoutMillis: 15_000});
  // An idle connection that dies (server restart) must not crash the process with an unhandled 'error'.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw databaseError(error, target, action);
  }
  return client;
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
