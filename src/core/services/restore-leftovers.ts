import {isSynapseError} from '../errors/index.js';
import {DatabaseAdmin, quoteIdentifier, type DatabaseTarget} from '../postgres/index.js';
import {claimDeadRestoreTestDatabases} from './test-restore.js';

export interface RestoreLeftovers {
  /** Scratch databases of restores that died, dropped now. */
  readonly reclaimed: readonly string[];
  /** Scratch databases of restores that died, not dropped (a dry run, or the drop failed), each with the statement that drops it. */
  readonly abandoned: ReadonlyArray<{readonly database: string; readonly drop: string; readonly reason: string}>;
  /** Where earlier restores kept the target's previous content, for the user to drop when done. */
  readonly previous: ReadonlyArray<{readonly database: string; readonly drop: string}>;
  /** A restore of the target is running now: its scratch database is not a leftover. */
  readonly restoreRunning: boolean;
}

/**
 * What earlier restores of the target, and test restores of any database, left on the server. Scratch databases count as leftovers
 * only while no restore of the target runs, which the restore lock tells; with `reclaim` they are
 * dropped, otherwise (or when the drop fails) they are reported with the statement that drops them.
 */
export async function findRestoreLeftovers(target: DatabaseTarget, options: {reclaim: boolean}): Promise<RestoreLeftovers> {
  const admin = await DatabaseAdmin.open(target, {lockTimeoutMs: 5000});
  try {
    const previous = (await admin.previousDatabasesOf(target.database)).map((database) => ({database, drop: `DROP DATABASE ${quoteIdentifier(database)};`}));
    const reclaimed: string[] = [];
    const abandoned: Array<{database: string; drop: string; reason: string}> = [];
    // A test restore that died leaves its scratch database for up to a week (the next one drops it); cleanup runs hourly.
    const deadTests = await claimDeadRestoreTestDatabases(admin);
    for (const database of deadTests.databases) {
      const drop = `DROP DATABASE ${quoteIdentifier(database)} WITH (FORCE);`;
      if (!options.reclaim) abandoned.push({database, drop, reason: 'left by a test restore that did not finish (dry run: not dropped)'});
      else {
        try {
          await admin.drop(database);
          reclaimed.push(database);
        } catch (error) {
          abandoned.push({database, drop, reason: `left by a test restore that did not finish; dropping it failed: ${isSynapseError(error) ? error.message : String(error)}`});
        }
      }
      await deadTests.release(database);
    }
    if (!(await admin.tryLockRestoreOf(target.database))) return {reclaimed, abandoned, previous, restoreRunning: true};
    for (const database of await admin.scratchDatabasesOf(target.database)) {
      const drop = `DROP DATABASE ${quoteIdentifier(database)} WITH (FORCE);`;
      if (!options.reclaim) {
        abandoned.push({database, drop, reason: 'left by a restore that did not finish (dry run: not dropped)'});
        continue;
      }
      try {
        await admin.drop(database);
        reclaimed.push(database);
      } catch (error) {
        abandoned.push({database, drop, reason: `left by a restore that did not finish; dropping it failed: ${isSynapseError(error) ? error.message : String(error)}`});
      }
    }
    await admin.unlockRestoreOf(target.database);
    return {reclaimed, abandoned, previous, restoreRunning: false};
  } finally {
    await admin.close();
  }
}
