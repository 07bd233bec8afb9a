import type {StorageBackend} from '../../contracts/storage.js';
import {readCatalog, type CatalogEntry} from '../catalog/index.js';
import type {ProgressEvents} from '../events/index.js';
import {acquireStorageLock} from '../lock/index.js';
import type {DocumentAuthenticator} from '../metadata/index.js';
import {metadataKeyFor, pendingKeyFor, verificationKeyFor} from '../naming/index.js';
import {applyRetentionPolicy, type BackupHealth, type RetentionDecision, type RetentionPolicy} from '../retention/index.js';
import {storageError} from '../storage/index.js';
import {checkStoredFile, writeVerificationRecord} from '../verification/index.js';

export interface CleanupContext {
  readonly storage: StorageBackend;
  readonly policy: RetentionPolicy;
  readonly events: ProgressEvents;
  /** Present when a key is configured: only authentic metadata counts. */
  readonly authenticator?: DocumentAuthenticator;
  readonly now?: () => Date;
}

export interface VerificationOutcome {
  readonly name: string;
  /** unreadable: the storage failed; the backup is not counted as verified, nor as damaged. */
  readonly status: 'intact' | 'damaged' | 'unreadable';
  /** Why it is damaged, or why it could not be read. */
  readonly problem?: string;
}

export interface CleanupResult {
  readonly dryRun: boolean;
  readonly policy: RetentionPolicy;
  readonly decisions: readonly RetentionDecision[];
  /** Backups read back in this run because a removal depended on them. */
  readonly verified: readonly VerificationOutcome[];
  /** Staging objects of interrupted runs, and run markers of backups that did finish. */
  readonly leftovers: readonly string[];
  /** Every key deleted (or, in a dry run, that would be). */
  readonly removedKeys: readonly string[];
}

/**
 * The keys of a removed backup in the order that is safe to stop at any point: the metadata
 * first (without it the backup no longer counts as good), the data file last but for the run
 * marker, whose loss would make a half-removed backup look like one whose metadata was lost.
 */
function keysToRemove(decision: RetentionDecision, entry: CatalogEntry): string[] {
  const name = decision.name;
  const data = entry.object ? [name] : [];
  const marker = entry.pending ? [pendingKeyFor(name)] : [];
  if (entry.health === 'incomplete') return [...data, ...marker];
  return [metadataKeyFor(name), ...(entry.hasVerificationRecord ? [verificationKeyFor(name)] : []), ...data, ...marker];
}

/**
 * Reads back, once, each good backup that a removal waits for, and remembers the result in a
 * verification record so later runs need not read it again. A damaged one stops counting as good,
 * so the older backup it would have replaced is kept.
 */
async function decideWithVerifiedReplacements(context: CleanupContext, backups: readonly CatalogEntry[], dryRun: boolean): Promise<{decisions: RetentionDecision[]; verified: VerificationOutcome[]}> {
  const {storage, events} = context;
  const now = context.now ?? (() => new Date());
  const byName = new Map(backups.map((entry) => [entry.name, entry]));
  const outcomes = new Map<string, VerificationOutcome>();
  for (;;) {
    const decisions = applyRetentionPolicy(
      backups.map((entry) => {
        const outcome = outcomes.get(entry.name);
        const health: BackupHealth = outcome?.status === 'damaged' ? 'damaged' : entry.health;
        return {
          name: entry.name,
          type: entry.parts.type,
          database: entry.metadata?.database.name,
          startedAt: entry.parts.startedAt,
          sequence: entry.parts.sequence,
          health,
          verified: entry.verification !== undefined || outcome?.status === 'intact',
        };
      }),
      context.policy,
    );
    const awaiting = [...new Set(decisions.flatMap((decision) => decision.awaitingVerification ?? []))].filter((name) => !outcomes.has(name));
    if (awaiting.length === 0) return {decisions, verified: [...outcomes.values()]};
    events.stage('verify', 'started', {detail: `${awaiting.length} backups to read back`});
    for (const name of awaiting) {
      const entry = byName.get(name)!;
      try {
        const check = await checkStoredFile(storage, entry.metadata!);
        outcomes.set(name, check.problem ? {name, status: 'damaged', problem: check.problem} : {name, status: 'intact'});
        if (!check.problem && !dryRun) {
          // Only a cache of work done: a full disk or a read-only record must not stop the cleanup.
          await writeVerificationRecord(storage, entry.metadata!, entry.object!, context.authenticator, now()).catch((error: unknown) =>
            events.warning(`unable to write the verification record of '${name}': ${(error as Error).message}; it will be read again next time`),
          );
        }
      } catch (error) {
        outcomes.set(name, {name, status: 'unreadable', problem: `could not be read back: ${storageError(error, storage, 'read backup', name).message}`});
      }
    }
    const failed = awaiting.map((name) => outcomes.get(name)!).filter((outcome) => outcome.status !== 'intact');
    events.stage('verify', 'finished', {detail: `${awaiting.length - failed.length} intact${failed.length > 0 ? `, ${failed.length} not` : ''}`});
    for (const outcome of failed) {
      const consequence = outcome.status === 'damaged' ? 'it no longer counts as a good backup' : 'it cannot count as verified';
      events.warning(`backup '${outcome.name}' is ${outcome.status}: ${outcome.problem}; ${consequence}, so the older backups it would replace are kept`);
    }
  }
}

/**
 * Applies the retention policy under the storage lock, so no backup is running and every staging
 * object or run marker found is a leftover of a run that crashed.
 */
export async function cleanupBackups(context: CleanupContext, options: {dryRun: boolean}): Promise<CleanupResult> {
  const {storage, events} = context;
  const lock = await acquireStorageLock(storage, options.dryRun ? 'backup cleanup --dry-run' : 'backup cleanup', {evenWhenFull: true});
  try {
    events.stage('plan', 'started');
    const catalog = await readCatalog(storage, {authenticator: context.authenticator});
    const {decisions, verified} = await decideWithVerifiedReplacements(context, catalog.backups, options.dryRun);
    const entries = new Map(catalog.backups.map((entry) => [entry.name, entry]));
    const finishedMarkers = catalog.backups.filter((entry) => entry.pending && entry.health !== 'incomplete').map((entry) => pendingKeyFor(entry.name));
    const leftovers = [...catalog.leftovers.map((object) => object.key), ...finishedMarkers];
    const removed = decisions.filter((decision) => decision.action === 'remove');
    const removedKeys = [...removed.flatMap((decision) => keysToRemove(decision, entries.get(decision.name)!)), ...leftovers.filter((key) => !removed.some((decision) => key === pendingKeyFor(decision.name)))];
    events.stage('plan', 'finished', {detail: `${removedKeys.length} objects to remove`});
    if (!options.dryRun) {
      events.stage('remove', 'started');
      for (const key of removedKeys) {
        try {
          await storage.delete(key);
          // There is room now for the lock to say who holds it (see acquireStorageLock's evenWhenFull).
          await lock.recordHolder().catch(() => {});
        } catch (error) {
          events.stage('remove', 'failed');
          throw storageError(error, storage, 'delete', key);
        }
      }
      events.stage('remove', 'finished', {detail: `${removedKeys.length} objects removed`});
    } else events.stage('remove', 'skipped', {detail: 'dry run'});
    return {dryRun: options.dryRun, policy: context.policy, decisions, verified, leftovers, removedKeys};
  } finally {
    await lock.release().catch(() => {});
  }
}
