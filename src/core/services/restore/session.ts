import type {Settings} from '../../config/index.js';
import {SynapseError} from '../../errors/index.js';
import {type ClientToolInfo, DatabaseAdmin, DatabaseTarget, type ExistingDatabase, probeClientTool, psqlSupportsRestrict} from '../../postgres/index.js';
import type {RestoreContext} from './restore-types.js';

// Step 3: a session on the server that owns the target for the restore's whole length

export const DEFAULT_LOCK_TIMEOUT_MS = 10_000;

export interface RestoreSession {
  readonly admin: DatabaseAdmin;
  readonly psql: ClientToolInfo;
  readonly existing: ExistingDatabase | undefined;
  readonly reclaimed: readonly string[];
}

/** SYNAPSE_BACKUP_LOCK_TIMEOUT_MS; a value that is not a positive whole number is said, and the default used. */
export function lockTimeoutMs(settings: Settings, warn: (message: string) => void): number {
  const raw = settings.env.SYNAPSE_BACKUP_LOCK_TIMEOUT_MS?.trim();
  if (!raw) return DEFAULT_LOCK_TIMEOUT_MS;
  if (/^\d+$/.test(raw) && Number(raw) > 0 && Number.isSafeInteger(Number(raw))) return Number(raw);
  warn(`unable to use SYNAPSE_BACKUP_LOCK_TIMEOUT_MS '${raw}': expected a whole number of milliseconds; using the default (${DEFAULT_LOCK_TIMEOUT_MS} ms) instead`);
  return DEFAULT_LOCK_TIMEOUT_MS;
}

export async function probeRestrictingPsql(settings: Settings): Promise<ClientToolInfo> {
  const psql = await probeClientTool('psql', settings.pgBinDir);
  if (!psqlSupportsRestrict(psql.version)) {
    throw new SynapseError('E_TOOL_VERSION', {
      message: `unable to restore with psql '${psql.command}': psql ${psql.version} has no \\restrict, so it could not refuse shell or \\connect commands planted in a backup`,
      suggestion: 'Install a psql of release 13.22, 14.19, 15.14, 16.10, 17.6 or later (apt-get install postgresql-client) or point PG_BIN_DIR at one.',
      details: {psqlVersion: psql.version},
    });
  }
  return psql;
}

/**
 * Opens the maintenance connection, takes the one-restore-per-target lock (a second restore of
 * the same target exits 11 at once) and drops the scratch databases of earlier restores of this
 * target that died: with the lock held, no live restore can own them.
 */
export async function openRestoreSession(context: RestoreContext, target: DatabaseTarget): Promise<RestoreSession> {
  const {settings, events} = context;
  const [probed, opened] = await Promise.allSettled([probeRestrictingPsql(settings), DatabaseAdmin.open(target, {lockTimeoutMs: lockTimeoutMs(settings, (message) => events.warning(message))})]);
  if (probed.status === 'rejected' || opened.status === 'rejected') {
    if (opened.status === 'fulfilled') await opened.value.close();
    throw probed.status === 'rejected' ? probed.reason : (opened as PromiseRejectedResult).reason;
  }
  const admin = opened.value;
  try {
    if (!(await admin.tryLockRestoreOf(target.database))) {
      throw new SynapseError('E_LOCKED', {
        message: `unable to restore into database '${target.database}': another restore of it is running`,
        suggestion: 'Wait for that restore to finish; only one restore per database runs at a time.',
      });
    }
    const reclaimed = await admin.scratchDatabasesOf(target.database);
    for (const name of reclaimed) {
      await admin.drop(name);
      events.warning(`dropped database '${name}', left by an earlier restore of '${target.database}' that did not finish`);
    }
    return {admin, psql: probed.value, existing: await admin.inspect(target.database), reclaimed};
  } catch (error) {
    await admin.close();
    throw error;
  }
}
