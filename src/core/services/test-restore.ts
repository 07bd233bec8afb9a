import {randomBytes} from 'node:crypto';

import {SynapseError, isSynapseError} from '../errors/index.js';
import {isPhysicalBackup, type BackupMetadata} from '../metadata/index.js';
import {DatabaseAdmin, compactTimestamp, shapeOf, compareFingerprints, fingerprintDatabase, type FingerprintDifference} from '../postgres/index.js';
import {loadInto, probeRestrictingPsql} from './restore/index.js';
import {decryptionFor, type StoredBackupContext} from './stored-backup.js';
import {verifyAndKeepMetadata, type VerifyOptions} from './verify-backup.js';

/** Scratch databases of test restores: `synapse_restore_test_<UTC time>_<random>`. Nothing else is ever dropped. */
export const RESTORE_TEST_DATABASE = /^synapse_restore_test_\d{8}_\d{6}_[0-9a-f]{6}$/;

export function restoreTestDatabaseName(at: Date): string {
  return `synapse_restore_test_${compactTimestamp(at)}_${randomBytes(3).toString('hex')}`;
}

/** Held by the session of a running test restore, so that a later one can tell its database from a dead one's. */
const lockLabel = (database: string): string => `restore test into ${database}`;

/**
 * The scratch databases of test restores that died (kill -9, a lost connection): those whose
 * owner's lock this session could take, and now holds until `release`. A running test restore's is never among them.
 */
export async function claimDeadRestoreTestDatabases(admin: DatabaseAdmin): Promise<{databases: string[]; release: (database: string) => Promise<void>}> {
  const databases: string[] = [];
  for (const candidate of await admin.databasesMatching(RESTORE_TEST_DATABASE)) {
    if (await admin.tryAdvisoryLock(lockLabel(candidate))) databases.push(candidate);
  }
  return {databases, release: (database) => admin.advisoryUnlock(lockLabel(database))};
}

export interface FingerprintComparison {
  /** 'skipped' for a backup without a fingerprint (older, or taken where no snapshot could be exported). */
  readonly status: 'matched' | 'differs' | 'skipped';
  readonly tables: number;
  readonly sequences: number;
  readonly differences: readonly FingerprintDifference[];
  readonly reason?: string;
}

export interface RestoreTestResult {
  readonly backupName: string;
  readonly backupType: string;
  readonly sourceDatabase: string;
  /** The scratch database it was loaded into; dropped again. */
  readonly scratchDatabase: string;
  readonly plaintextBytes: number;
  readonly comparison: FingerprintComparison;
  /** Scratch databases of earlier test restores that died, dropped before this one began. */
  readonly reclaimedDatabases: readonly string[];
  readonly durationMs: number;
}

function compare(metadata: BackupMetadata, actual: Awaited<ReturnType<typeof fingerprintDatabase>> | undefined): FingerprintComparison {
  const recorded = metadata.fingerprint;
  if (!recorded || !actual) {
    return {status: 'skipped', tables: 0, sequences: 0, differences: [], reason: 'the backup carries no fingerprint (it was taken before synapse-backup recorded one, or where no snapshot could be exported)'};
  }
  const differences = compareFingerprints(recorded, actual);
  return {status: differences.length === 0 ? 'matched' : 'differs', tables: recorded.tables.length, sequences: recorded.sequences.length, differences};
}

const NOTHING_TOUCHED = 'A test restore loads only into its own scratch database, which is dropped; the configured database was not touched.';

/** The load is restore's; its words are a restore's ("the target was left as it was"), and a test restore has no target. */
function asTestRestoreError(error: unknown): unknown {
  if (!isSynapseError(error) || (error.code !== 'E_RESTORE_FAILED' && error.code !== 'E_CANCELLED')) return error;
  return error.with({
    message: error.message.replaceAll(/(,| and) the target was left as it was/g, '').replaceAll('; the target was not touched', ''),
    suggestion: error.code === 'E_CANCELLED' ? `The test restore was cancelled. ${NOTHING_TOUCHED}` : `${NOTHING_TOUCHED} Read psql's message above: the backup did not load, so do not rely on it; take a new backup and test-restore that one.`,
  });
}

/**
 * Proves a backup restorable: verifies it to the end, loads it with psql into a scratch database
 * it creates on the configured server, counts every table's rows and reads every sequence there,
 * and compares them with the fingerprint taken in pg_dump's snapshot at backup time. The scratch
 * database is dropped afterwards whatever happens (success, failure, Ctrl-C, SIGTERM); one that a
 * killed test restore left is dropped by the next. The configured database is never touched.
 */
export async function testRestore(context: StoredBackupContext, name: string, options: VerifyOptions = {}): Promise<RestoreTestResult> {
  const now = context.now ?? (() => new Date());
  const startedAt = now();
  const {settings, events} = context;
  // The metadata the verification checked is the one loaded and compared with: no second read for someone to swap.
  const {report: verification, metadata} = await verifyAndKeepMetadata(context, name, options);
  if (verification.failure || !metadata) {
    throw new SynapseError(verification.failure!.code, {
      message: `unable to test-restore '${name}': it failed verification: ${verification.failure!.message}`,
      details: {checks: verification.checks},
    });
  }
  if (isPhysicalBackup(metadata)) {
    throw new SynapseError('E_USAGE', {
      message: `unable to test-restore '${name}': it is a physical backup, which this test restore (a load into a scratch database) cannot replay; it was verified, and its WAL checked in the archive`,
      suggestion: `Restore it into a scratch data directory and start a server on it: synapse-backup backup restore ${name} --data-dir DIR --latest`,
      details: {checks: verification.checks},
    });
  }
  const decryption = decryptionFor(settings, context.encryptionProviders, metadata, 'test-restore');
  const psql = await probeRestrictingPsql(settings);

  events.stage('prepare', 'started');
  const admin = await DatabaseAdmin.open(settings.database, {lockTimeoutMs: 10_000});
  let scratch: string | undefined;
  try {
    const dead = await claimDeadRestoreTestDatabases(admin);
    const reclaimed: string[] = [];
    for (const leftover of dead.databases) {
      await admin.drop(leftover);
      await dead.release(leftover);
      reclaimed.push(leftover);
      events.warning(`dropped database '${leftover}', left by an earlier test restore that did not finish`);
    }
    scratch = restoreTestDatabaseName(startedAt);
    await admin.tryAdvisoryLock(lockLabel(scratch));
    try {
      // In the backup's encoding and locale: a SQL_ASCII database loaded into UTF8 would fail here, not on its own server.
      await admin.createEmpty(scratch, shapeOf(metadata.database.properties));
    } catch (error) {
      if (isSynapseError(error) && error.code === 'E_DB_PRIVILEGE') {
        throw error.with({suggestion: 'A test restore loads into a new database: grant the role CREATEDB (ALTER ROLE <role> CREATEDB).'});
      }
      throw error;
    }
    events.stage('prepare', 'finished', {detail: scratch});

    const {plaintextBytes} = await loadInto(context, metadata, psql, settings.database.withDatabase(scratch), decryption);

    events.stage('compare', 'started');
    const actual = metadata.fingerprint ? await fingerprintDatabase(settings.database.withDatabase(scratch)) : undefined;
    const comparison = compare(metadata, actual);
    events.stage('compare', comparison.status === 'differs' ? 'failed' : comparison.status === 'skipped' ? 'skipped' : 'finished', {
      detail: comparison.status === 'matched' ? `${comparison.tables} tables, ${comparison.sequences} sequences as counted at backup time` : comparison.status === 'skipped' ? 'no fingerprint in the backup' : `${comparison.differences.length} differences`,
    });
    const result: RestoreTestResult = {
      backupName: name,
      backupType: metadata.backupType,
      sourceDatabase: metadata.database.name,
      scratchDatabase: scratch,
      plaintextBytes,
      comparison,
      reclaimedDatabases: reclaimed,
      durationMs: now().getTime() - startedAt.getTime(),
    };
    if (comparison.status === 'differs') {
      const listed = comparison.differences.slice(0, 10).map((difference) => `${difference.kind} ${difference.schema}.${difference.name}: expected ${difference.expected ?? 'nothing'}, restored ${difference.actual ?? 'nothing'}`);
      throw new SynapseError('E_RESTORE_TEST_FAILED', {
        message: `the test restore of '${name}' loaded, but ${comparison.differences.length} of its tables and sequences differ from what was counted at backup time: ${listed.join('; ')}${comparison.differences.length > 10 ? '; ...' : ''}`,
        details: {result},
      });
    }
    return result;
  } catch (error) {
    for (const stage of ['prepare', 'load', 'compare'] as const) events.stage(stage, 'skipped', {detail: 'stopped'});
    throw asTestRestoreError(error);
  } finally {
    if (scratch) {
      events.stage('drop', 'started');
      try {
        await admin.drop(scratch);
        events.stage('drop', 'finished', {detail: scratch});
      } catch (error) {
        events.stage('drop', 'failed');
        events.warning(`unable to drop the test restore's database '${scratch}': ${(error as Error).message}; the next test restore drops it`);
      }
    }
    await admin.close();
  }
}
