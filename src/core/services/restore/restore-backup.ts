import {SynapseError, isSynapseError} from '../../errors/index.js';
import {isPhysicalBackup} from '../../metadata/index.js';
import {previousDatabaseName, scratchDatabaseName, shapeOf} from '../../postgres/index.js';
import type {TrustDecision} from '../../trust/index.js';
import {type Decryption, decryptionFor, readBackupMetadata} from '../stored-backup.js';
import {type IntegrityChecks, startIntegrityChecks} from './integrity-checks.js';
import {loadInto} from './load.js';
import {type RestoreContext, type RestorePlan, type RestoreRequest, type RestoreResult, cancelled} from './restore-types.js';
import {createRecordedRoles} from './roles.js';
import {type RestoreSession, openRestoreSession} from './session.js';
import {assertEncodingFits, assertRestoreAllowed} from './trust-step.js';

// The whole restore

/**
 * The error to report: a failed integrity check explains everything after it; a cancellation is
 * reported as one, whatever it tore down; otherwise the failure itself.
 */
export async function reportedError(error: unknown, checks: IntegrityChecks | undefined, signal: AbortSignal): Promise<unknown> {
  const failedCheck = await checks?.failure();
  if (failedCheck !== undefined) return failedCheck;
  if (signal.aborted && !(isSynapseError(error) && error.code === 'E_CANCELLED')) return cancelled();
  return error;
}

/**
 * Restores a backup so that the target database holds exactly its content, or, on any failure or
 * cancellation, is left exactly as it was:
 *  1. read the metadata and refuse what cannot be trusted (not authentic, unencrypted, another database);
 *  2. check the stored file's checksum and the key, in the background;
 *  3. open a session that owns the target's restore lock, and drop what dead restores left;
 *  4. confirm (the countdown), create the scratch database, wait for the checks;
 *  5. load the dump into the scratch database with psql, refusing every meta-command;
 *  6. copy the database-level properties and swap the scratch database in, in one transaction.
 * The old database is kept as `<name>_pre_restore_<timestamp>` for the user to drop.
 */
export async function restoreBackup(context: RestoreContext, request: RestoreRequest): Promise<RestoreResult> {
  const now = context.now ?? (() => new Date());
  const startedAt = now();
  const {events, settings} = context;
  const target = settings.database;

  const metadata = await readBackupMetadata(context.storage, request.name, 'restore');
  if (isPhysicalBackup(metadata)) {
    throw new SynapseError('E_USAGE', {message: `unable to restore '${request.name}' into a database: it is a physical backup of a whole cluster`, suggestion: `Restore it with --data-dir DIR into a new data directory.`});
  }
  // The MAC's key derivation (a PBKDF2) overlaps the read-only checks of the file and the key;
  // nothing touches a database before the MAC has passed.
  const allowed = assertRestoreAllowed(context, request, metadata);
  allowed.catch(() => {});
  let decryption: Decryption | undefined;
  try {
    decryption = decryptionFor(context.settings, context.encryptionProviders, metadata, 'restore');
  } catch (error) {
    await allowed;
    throw error;
  }
  const stopChecks = new AbortController();
  const checks = startIntegrityChecks(context, metadata, decryption, AbortSignal.any([context.signal, stopChecks.signal]));
  let trust: TrustDecision;
  try {
    trust = await allowed;
  } catch (error) {
    stopChecks.abort();
    await checks.failure();
    throw error;
  }

  let session: RestoreSession;
  try {
    session = await openRestoreSession(context, target);
  } catch (error) {
    throw await reportedError(error, checks, context.signal);
  }
  const {admin, existing} = session;
  let scratchName: string | undefined;
  let swapped = false;
  try {
    let previousDatabase: string | undefined;
    if (existing) {
      previousDatabase = previousDatabaseName(target.database, startedAt);
      // Two restores in one second: the second keeps its previous database under a name of its own.
      if (await admin.exists(previousDatabase)) previousDatabase = previousDatabaseName(target.database, startedAt, true);
    }
    const plan: RestorePlan = {
      backupName: metadata.backupName,
      sourceDatabase: metadata.database.name,
      database: target.database,
      targetExists: existing !== undefined,
      previousDatabase,
      reclaimedDatabases: session.reclaimed,
      metadata,
    };
    const recorded = metadata.database.properties;
    assertEncodingFits(metadata, existing);
    await request.confirm(plan, checks.failed);
    if (context.signal.aborted) throw cancelled();

    events.stage('prepare', 'started');
    scratchName = scratchDatabaseName(target.database, startedAt);
    try {
      // A new database takes the recorded encoding and locale; its owner follows once the roles exist.
      await admin.createEmpty(scratchName, existing ?? shapeOf(recorded));
    } catch (error) {
      if (isSynapseError(error) && error.code === 'E_DB_PRIVILEGE') {
        throw error.with({suggestion: `A restore loads into a new database first: grant the role CREATEDB (ALTER ROLE <role> CREATEDB) and make it the owner of '${target.database}'.`});
      }
      throw error;
    }
    await checks.passed;
    const createdRoles = request.createRoles ? await createRecordedRoles(context, admin, metadata, decryption, {authentic: trust.verdict === 'authentic', superuserEquivalent: request.allowSuperuserEquivalentGrants === true}) : [];
    events.stage('prepare', 'finished', {detail: createdRoles.length > 0 ? `${scratchName}; created roles ${createdRoles.join(', ')}` : scratchName});

    const {plaintextBytes, psqlWarnings} = await loadInto(context, metadata, session.psql, target.withDatabase(scratchName), decryption, request.skip);
    if (existing) await admin.copyDatabaseProperties(target.database, scratchName);
    else if (recorded) {
      const withheld = await admin.applyDatabaseProperties(scratchName, recorded, {trusted: trust.verdict === 'authentic', owner: true});
      if (withheld.length > 0) events.warning(`database '${target.database}' was created without these of its recorded properties: ${withheld.join('; ')}; set them yourself if they are needed`);
    } else events.warning(`backup '${metadata.backupName}' records no database properties (it was taken before synapse-backup recorded them): database '${target.database}' was created with this server's defaults (encoding, owner, grants, settings)`);

    if (context.signal.aborted) throw cancelled();
    events.stage('swap', 'started');
    await admin.swap(target.database, scratchName, previousDatabase ?? '', existing);
    swapped = true;
    events.stage('swap', 'finished', {detail: previousDatabase ? `previous database kept as '${previousDatabase}'` : target.database});
    return {...plan, createdRoles, plaintextBytes, psqlWarnings, durationMs: now().getTime() - startedAt.getTime()};
  } catch (error) {
    for (const stage of ['prepare', 'load', 'swap'] as const) events.stage(stage, 'skipped', {detail: 'stopped'});
    throw await reportedError(error, checks, context.signal);
  } finally {
    if (scratchName && !swapped) await admin.drop(scratchName).catch(() => {});
    // Ends the session, and with it the restore lock.
    await admin.close();
  }
}
