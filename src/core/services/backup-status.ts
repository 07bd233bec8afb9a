import type {StorageBackend, StorageSpace} from '../../contracts/storage.js';
import {readCatalog} from '../catalog/index.js';
import type {Settings} from '../config/index.js';
import {readJournal} from '../journal/index.js';
import type {BackupHealth} from '../retention/index.js';
import {evaluateStatus, statusPolicyFrom, type BackupFact, type StatusReport, type UnusableBackup} from '../status/index.js';
import {storageError} from '../storage/index.js';
import {documentAuthenticatorFor} from '../trust/index.js';

/** How status words each kind of backup that does not count. */
const UNUSABLE_REASONS: Record<Exclude<BackupHealth, 'good' | 'incomplete'>, string> = {
  forged: 'not authentic with the configured key (forged, or made with another key)',
  unsigned: 'not authenticated (no MAC, or written without a key)',
  damaged: 'damaged',
  'metadata-missing': 'without metadata',
  'metadata-unreadable': 'with unreadable metadata',
  'data-missing': 'without their backup file',
};

export interface StatusRequest {
  /** Every database the storage holds backups of, instead of the configured one. */
  readonly allDatabases: boolean;
  readonly now?: Date;
}

/**
 * Reads everything status needs from the storage alone (no database is contacted, so a monitoring
 * host that can only read the storage can run it): the good backups, the run journal and the free
 * space, and evaluates them against the BACKUP_ALERT_* thresholds.
 */
export async function readBackupStatus(settings: Settings, storage: StorageBackend, request: StatusRequest, onWarning: (message: string) => void): Promise<StatusReport> {
  const policy = statusPolicyFrom(settings.env);
  const authenticator = documentAuthenticatorFor(settings.encryption);
  const [{backups}, journal, space] = await Promise.all([
    readCatalog(storage, {authenticator}),
    readJournal(storage, authenticator).catch((error: unknown) => {
      throw storageError(error, storage, 'read the run journal in');
    }),
    measureSpace(storage, onWarning),
  ]);
  const allFacts: BackupFact[] = backups.flatMap((entry) =>
    entry.health === 'good' && entry.metadata
      ? [
          {
            name: entry.name,
            database: entry.metadata.database.name,
            type: entry.metadata.backupType,
            createdAt: new Date(entry.metadata.createdAt),
            completedAt: new Date(entry.metadata.completedAt),
            storedBytes: entry.metadata.sizes.storedBytes,
            durationMs: entry.metadata.durationMs,
          },
        ]
      : [],
  );
  const facts = await withRetention(storage, allFacts);
  const unusable: UnusableBackup[] = backups.flatMap((entry) =>
    entry.health === 'good' || entry.health === 'incomplete'
      ? []
      : [{database: entry.metadata?.database.name, reason: UNUSABLE_REASONS[entry.health], ...(entry.unreadable ? {unreadable: entry.unreadable} : {})}],
  );
  const databases = request.allDatabases ? [...new Set(facts.map((fact) => fact.database))].sort() : [settings.database.database];
  if (journal.rejectedKeys.length > 0) onWarning(`${journal.rejectedKeys.length} entries of the run journal could not be read${authenticator ? ' or are not authentic' : ''}, and were ignored`);
  return evaluateStatus({
    now: request.now ?? new Date(),
    databases,
    backups: facts,
    unusable,
    journal: journal.entries.map((stored) => stored.entry),
    rejectedJournalEntries: journal.rejectedKeys.length,
    location: storage.location,
    space,
    policy,
  });
}

/**
 * The newest good backup of each database and type with its retention (Object Lock), which only a
 * stat tells: a few requests, for the rows status shows. A stat that fails leaves it unknown.
 */
async function withRetention(storage: StorageBackend, facts: BackupFact[]): Promise<BackupFact[]> {
  const newest = new Map<string, BackupFact>();
  for (const fact of facts) {
    const key = `${fact.database}\0${fact.type}`;
    if (!newest.has(key) || newest.get(key)!.createdAt < fact.createdAt) newest.set(key, fact);
  }
  const retained = new Map<string, Date>();
  await Promise.all(
    [...newest.values()].map(async (fact) => {
      const object = await storage.stat(fact.name).catch(() => undefined);
      if (object?.retainedUntil) retained.set(fact.name, object.retainedUntil);
    }),
  );
  return facts.map((fact) => (retained.has(fact.name) ? {...fact, retainedUntil: retained.get(fact.name)!} : fact));
}

async function measureSpace(storage: StorageBackend, onWarning: (message: string) => void): Promise<StorageSpace | undefined> {
  if (!storage.space) return undefined;
  try {
    return await storage.space();
  } catch (error) {
    onWarning(`unable to measure the free space of '${storage.location}': ${(error as Error).message}`);
    return undefined;
  }
}
