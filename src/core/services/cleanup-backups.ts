import type {StorageBackend} from '../../contracts/storage.js';
import {readCatalog} from '../catalog/index.js';
import type {ProgressEvents} from '../events/index.js';
import {acquireStorageLock} from '../lock/index.js';
import {metadataKeyFor} from '../naming/index.js';
import {applyRetentionPolicy, type RetentionDecision, type RetentionPolicy} from '../retention/index.js';
import {storageError} from '../storage/index.js';

export interface CleanupContext {
  readonly storage: StorageBackend;
  readonly policy: RetentionPolicy;
  readonly events: ProgressEvents;
}

export interface CleanupResult {
  readonly dryRun: boolean;
  readonly policy: RetentionPolicy;
  readonly decisions: readonly RetentionDecision[];
  /** Staging objects of interrupted runs. */
  readonly leftovers: readonly string[];
  /** Every key deleted (or, in a dry run, that would be). */
  readonly removedKeys: readonly string[];
}

/**
 * Applies the retention policy under the storage lock, so no backup is running and every staging
 * object found is a leftover of a run that crashed.
 */
export async function cleanupBackups(context: CleanupContext, options: {dryRun: boolean}): Promise<CleanupResult> {
  const {storage, events} = context;
  const lock = await acquireStorageLock(storage, options.dryRun ? 'backup cleanup --dry-run' : 'backup cleanup');
  try {
    events.stage('plan', 'started');
    const catalog = await readCatalog(storage);
    const decisions = applyRetentionPolicy(
      catalog.backups.map((entry) => ({name: entry.name, type: entry.parts.type, startedAt: entry.parts.startedAt, sequence: entry.parts.sequence, health: entry.health})),
      context.policy,
    );
    const leftovers = catalog.leftovers.map((object) => object.key);
    const present = new Set(catalog.backups.filter((entry) => entry.object).map((entry) => entry.name));
    // The metadata goes first: without it the backup no longer counts as good, even if deleting the data file then fails.
    const removedKeys = [
      ...decisions.filter((decision) => decision.action === 'remove').flatMap((decision) => [metadataKeyFor(decision.name), ...(present.has(decision.name) ? [decision.name] : [])]),
      ...leftovers,
    ];
    events.stage('plan', 'finished', {detail: `${removedKeys.length} objects to remove`});
    if (!options.dryRun) {
      events.stage('remove', 'started');
      for (const key of removedKeys) {
        try {
          await storage.delete(key);
        } catch (error) {
          events.stage('remove', 'failed');
          throw storageError(error, storage, 'delete', key);
        }
      }
      events.stage('remove', 'finished', {detail: `${removedKeys.length} objects removed`});
    } else events.stage('remove', 'skipped', {detail: 'dry run'});
    return {dryRun: options.dryRun, policy: context.policy, decisions, leftovers, removedKeys};
  } finally {
    await lock.release().catch(() => {});
  }
}
