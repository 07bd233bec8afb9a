import {randomBytes} from 'node:crypto';

import type {StorageBackend} from '../../contracts/storage.js';
import type {Settings} from '../config/index.js';
import {isSynapseError} from '../errors/index.js';
import type {DeliveryReport, Notifier} from '../notify/index.js';
import {assertDumpCanReadServer, probeClientTool, readServerInfo, type ServerInfo} from '../postgres/index.js';
import {probeKey} from '../naming/index.js';
import {readSmallObject, writeSmallObject} from '../storage/index.js';
import {documentAuthenticatorFor} from '../trust/index.js';
import {listBackups} from './list-backups.js';

export type CheckStatus = 'ok' | 'warning' | 'failed' | 'skipped';

export interface CheckResult {
  readonly check: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** What to do about a warning or a failure. */
  readonly suggestion?: string;
}

function fromError(check: string, error: unknown): CheckResult {
  if (isSynapseError(error)) return {check, status: 'failed', detail: error.message, suggestion: error.suggestion};
  return {check, status: 'failed', detail: (error as Error).message};
}

async function attempt(check: string, work: () => Promise<Omit<CheckResult, 'check'>>): Promise<CheckResult> {
  try {
    return {check, ...(await work())};
  } catch (error) {
    return fromError(check, error);
  }
}

/** The server answers, pg_dump can read it, and psql is there for the day a restore is needed. */
export async function checkDatabase(settings: Settings): Promise<CheckResult[]> {
  let info: ServerInfo | undefined;
  const server = await attempt('database', async () => {
    info = await readServerInfo(settings.database);
    return {status: 'ok', detail: `PostgreSQL ${info.version}, database '${info.database}'`};
  });
  const pgDump = await attempt('pg_dump', async () => {
    const tool = await probeClientTool('pg_dump', settings.pgBinDir);
    if (info) assertDumpCanReadServer(tool, info.major, info.version);
    return {status: 'ok', detail: `pg_dump ${tool.version} (${tool.command})`};
  });
  const psql = await attempt('psql', async () => {
    const tool = await probeClientTool('psql', settings.pgBinDir);
    return {status: 'ok', detail: `psql ${tool.version} (${tool.command})`};
  });
  return [server, pgDump, psql];
}

/**
 * Writes, reads back and deletes a small private object under a name no other command takes for
 * a backup: the storage is reachable, writable, returns what it was given, and lets this user
 * delete (a backup removes its markers, a cleanup old backups). Each step that fails is named.
 * Reaching the storage at all (credentials, the bucket, the directory) is opening it, before this.
 */
export async function checkStorageWritable(storage: StorageBackend): Promise<CheckResult> {
  const key = probeKey(randomBytes(6).toString('hex'));
  const text = `written by synapse-backup check at ${new Date().toISOString()}\n`;
  const step = async <T>(name: string, work: () => Promise<T>): Promise<T | CheckResult> => {
    try {
      return await work();
    } catch (error) {
      const reason = isSynapseError(error) ? error.message : (error as Error).message;
      return {check: 'storage', status: 'failed', detail: `${storage.scheme} ${storage.location}: unable to ${name} its probe '${key}': ${reason}`, suggestion: `Give this user permission to ${name} objects at the backup location, and check that it is healthy.`};
    }
  };
  const isFailure = (value: unknown): value is CheckResult => typeof value === 'object' && value !== null && 'check' in value;
  const written = await step('write', () => writeSmallObject(storage, key, text, {private: true, ifNotExists: true}));
  if (isFailure(written)) return written;
  const back = await step('read back', () => readSmallObject(storage, key));
  if (isFailure(back) || back !== text) {
    await storage.delete(key).catch(() => {});
    return isFailure(back) ? back : {check: 'storage', status: 'failed', detail: `${storage.location} returned other bytes than it was given`, suggestion: 'Check the storage for faults before trusting backups to it.'};
  }
  const deleted = await step('delete', () => storage.delete(key));
  if (isFailure(deleted)) return deleted;
  const atomic = storage.capabilities.conditionalPut ? '' : '; no atomic conditional put, so the lock cannot exclude a run on another host';
  return {check: 'storage', status: storage.capabilities.conditionalPut ? 'ok' : 'warning', detail: `${storage.scheme} ${storage.location}: write, read and delete work${atomic}`};
}

/**
 * Whether the configured key is the one the existing backups were made with: a wrong key found by
 * `check` at noon beats one found by a restore at 3 a.m.
 */
export async function checkKey(settings: Settings, storage: StorageBackend | undefined): Promise<CheckResult> {
  if (!settings.encryption) {
    return {check: 'key', status: 'warning', detail: 'no BACKUP_ENCRYPTION_KEY: backups are stored unencrypted and their metadata unauthenticated', suggestion: 'Set BACKUP_ENCRYPTION_KEY or BACKUP_ENCRYPTION_KEY_FILE.'};
  }
  if (!storage) return {check: 'key', status: 'skipped', detail: 'the storage could not be opened'};
  return attempt('key', async () => {
    const backups = await listBackups(storage, {authenticator: documentAuthenticatorFor(settings.encryption), database: settings.database.database});
    const newest = backups.find((backup) => backup.health !== 'metadata-missing' && backup.health !== 'incomplete');
    if (!newest) return {status: 'ok', detail: `${settings.encryption!.provider}; no backup of '${settings.database.database}' yet to try it on`};
    if (newest.health === 'forged') {
      return {
        status: 'failed',
        detail: `the key does not authenticate the newest backup (${newest.name}): either the key changed or the backup was not made with it`,
        suggestion: 'Set BACKUP_ENCRYPTION_KEY to the key in use when the backups were made; restores with this key will be refused.',
      };
    }
    return {status: 'ok', detail: `${settings.encryption!.provider}; authenticates the newest backup (${newest.name})`};
  });
}

/** Each active sink, configured; with `reports`, what became of the test.ping sent to it. */
export function checkSinks(notifier: Notifier, reports?: readonly DeliveryReport[], probes: ReadonlyMap<string, string | undefined> = new Map()): CheckResult[] {
  const results: CheckResult[] = notifier.warnings.map((warning) => ({check: 'notifications', status: 'failed', detail: warning}));
  for (const sink of notifier.sinks) {
    const report = reports?.find((candidate) => candidate.sink === sink.id);
    const events = `events ${sink.events.join(',')}`;
    const probe = probes.get(sink.id);
    if (probe) results.push({check: `notify:${sink.id}`, status: 'failed', detail: `${notifier.redact(sink.sink.target)}: ${probe}`});
    else if (!reports) results.push({check: `notify:${sink.id}`, status: 'ok', detail: `${sink.sink.target}; ${events}${probe === '' ? '; reachable' : ''}`});
    else if (report?.delivered) results.push({check: `notify:${sink.id}`, status: 'ok', detail: `${sink.sink.target}: test.ping delivered in ${report.durationMs} ms`});
    else results.push({check: `notify:${sink.id}`, status: 'failed', detail: `${sink.sink.target}: test.ping not delivered: ${report?.error ?? 'no report'}`});
  }
  if (notifier.sinks.length === 0 && results.length === 0) {
    results.push({check: 'notifications', status: 'warning', detail: 'no notification sink is active: nobody hears of a failed backup', suggestion: 'Set NOTIFY_WEBHOOK_URL, NOTIFY_SLACK_WEBHOOK_URL, NOTIFY_EMAIL_TO, NOTIFY_COMMAND or NOTIFY_HEARTBEAT_URL.'});
  }
  return results;
}
