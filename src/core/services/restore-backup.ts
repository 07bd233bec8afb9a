import type {Transform} from 'node:stream';

import type {Settings} from '../config/index.js';
import {SynapseError, cancelledError, isSynapseError} from '../errors/index.js';
import type {RestoreStage} from '../events/index.js';
import type {BackupMetadata} from '../metadata/index.js';
import {ByteCounter, COMPRESSION_FORMATS, Sha256Observer, StreamChain, StreamChainFailure, createDecompressStream, transformWhole} from '../pipeline/index.js';
import {
  DatabaseAdmin,
  DatabaseTarget,
  OwnershipFilter,
  type OwnershipFilterOptions,
  RestrictedDumpStream,
  previousDatabaseName,
  probeClientTool,
  psqlSupportsRestrict,
  scratchDatabaseName,
  startPsql,
  nameForMessage,
  shapeOf,
  type ClientToolInfo,
  type ExistingDatabase,
} from '../postgres/index.js';
import {storageError} from '../storage/index.js';
import {checkStoredFile} from '../verification/index.js';
import {decideTrust, documentAuthenticatorFor, type TrustDecision} from '../trust/index.js';
import {assertBackupName, decryptionFor, keyFits, readBackupMetadata, type Decryption, type StoredBackupContext} from './stored-backup.js';

/** What a restore works with: the same as every reader of stored backups. */
export type RestoreContext = StoredBackupContext;

export interface RestorePlan {
  readonly backupName: string;
  /** The database the backup was taken from, per its metadata. */
  readonly sourceDatabase: string;
  /** The database that will hold the backup's content: the target. */
  readonly database: string;
  readonly targetExists: boolean;
  /** Where the current database is kept after the swap. */
  readonly previousDatabase: string | undefined;
  /** Scratch databases of earlier restores that died, dropped before this one began. */
  readonly reclaimedDatabases: readonly string[];
  readonly metadata: BackupMetadata;
}

export interface RestoreRequest {
  readonly name: string;
  /** Restore an unencrypted backup although a key is configured. */
  readonly allowUnencrypted?: boolean;
  /** Restore a backup whose metadata has no MAC although a key is configured (a legacy backup); nothing privileged comes from it. */
  readonly allowUnsigned?: boolean;
  /**
   * With --create-roles and authentic metadata: also grant memberships in superuser roles and in
   * pg_execute_server_program, pg_read_server_files and pg_write_server_files, which give a role
   * the server's own operating-system account.
   */
  readonly allowSuperuserEquivalentGrants?: boolean;
  /** Restore a backup of another database over the target. */
  readonly allowOtherDatabase?: boolean;
  /** Create the roles the backup records that this server lacks (a new server after a disaster), before loading. */
  readonly createRoles?: boolean;
  /** Leave out the dump's ownership (and privilege) statements: everything is owned by the restoring role. */
  readonly skip?: OwnershipFilterOptions;
  /**
   * Last chance to stop before any database is touched; rejects to cancel. It runs while the
   * backup's checksum and key are being checked; `signal` aborts it when one of those fails.
   */
  readonly confirm: (plan: RestorePlan, signal: AbortSignal) => Promise<void>;
}

export interface RestoreResult extends RestorePlan {
  /** Roles created by --create-roles; empty otherwise. */
  readonly createdRoles: readonly string[];
  readonly plaintextBytes: number;
  /** psql's warnings during the load (which succeeded), also given as a warning of the run. */
  readonly psqlWarnings: LoadOutcome['psqlWarnings'];
  readonly durationMs: number;
}

/** The flag that lets authentic metadata make a created role a member of a superuser-equivalent role. */
export const SUPERUSER_EQUIVALENT_FLAG = '--grant-superuser-equivalent';

/** One wording for every cancelled restore. */
function cancelled(): SynapseError {
  return cancelledError('finish the restore', 'The target database was left as it was.');
}

/** Only a bare backup name is accepted: no paths, no `..`, nothing this tool did not name. */
export function assertRestorableName(name: string): void {
  assertBackupName(name, 'restore');
}

// ---- Step 1: read the backup's metadata and decide whether it may be restored at all ----

/**
 * Everything in the storage is untrusted: the one trust decision (see core/trust) must not refuse
 * the metadata, and a backup of another database is refused unless asked for. Resolves to the
 * decision, which later says whether anything privileged may come from the metadata.
 */
async function assertRestoreAllowed(context: RestoreContext, request: RestoreRequest, metadata: BackupMetadata): Promise<TrustDecision> {
  const {settings, events} = context;
  const name = metadata.backupName;
  const decryption = metadata.encryption && settings.encryption ? decryptionFor(context.settings, context.encryptionProviders, metadata, 'restore') : undefined;
  const trust = await decideTrust(metadata, {
    authenticator: documentAuthenticatorFor(settings.encryption),
    allowUnencrypted: request.allowUnencrypted,
    allowUnsigned: request.allowUnsigned,
    ...(decryption ? {keyFits: () => keyFits(context.storage, metadata, decryption)} : {}),
  });
  if (trust.verdict === 'refused') throw new SynapseError(trust.code, {message: `unable to restore '${name}': ${trust.reason}`});
  if (trust.verdict === 'unauthenticated' && trust.why !== 'no-key') events.warning(`restoring '${name}' on the strength of its checksum${metadata.encryption ? ' and key' : ''} alone: ${trust.reason}`);
  const target = settings.database.database;
  if (metadata.database.name !== target && !request.allowOtherDatabase) {
    throw new SynapseError('E_OTHER_DATABASE', {
      message: `unable to restore '${name}' into database '${target}': it is a backup of database '${metadata.database.name}'`,
      details: {sourceDatabase: metadata.database.name, targetDatabase: target},
    });
  }
  const missingCodec = COMPRESSION_FORMATS[metadata.compression.algorithm].unavailable();
  if (missingCodec) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to restore '${name}': it is ${metadata.compression.algorithm}-compressed and ${missingCodec}`,
      suggestion: 'Run synapse-backup through its launcher bin/synapse-backup, which uses the Node.js that `npm install` brings.',
    });
  }
  return trust;
}

// ---- Step 2: check the stored file and the key, while the rest is set up ----

/** Reads the whole stored file and checks its size and SHA-256 against the metadata. */
async function verifyStoredFile(context: RestoreContext, metadata: BackupMetadata, signal: AbortSignal): Promise<void> {
  const {storage, events} = context;
  const name = metadata.backupName;
  events.stage('verify', 'started');
  let check;
  try {
    check = await checkStoredFile(storage, metadata, {signal, onProgress: (bytes) => events.stage('verify', 'progress', {bytes})});
  } catch (error) {
    events.stage('verify', 'failed');
    if (signal.aborted) throw cancelled();
    throw storageError(error, storage, 'read backup', name);
  }
  if (check.problem) {
    events.stage('verify', 'failed');
    throw new SynapseError('E_INTEGRITY', {message: `unable to restore '${name}': the stored file is damaged: ${check.problem}`, details: {expected: metadata.checksums.stored, actual: check.sha256}});
  }
  events.stage('verify', 'finished', {bytes: check.bytes, detail: `sha256 ${check.sha256}`});
}

async function assertKeyFits(context: RestoreContext, metadata: BackupMetadata, decryption: Decryption): Promise<void> {
  if (!(await keyFits(context.storage, metadata, decryption))) {
    throw new SynapseError('E_WRONG_KEY', {
      message: `unable to decrypt '${metadata.backupName}': the configured key is not the one it was encrypted with (its checksum is intact)`,
    });
  }
}

interface IntegrityChecks {
  /** Aborted as soon as one check fails, to end the countdown at once. */
  readonly failed: AbortSignal;
  /** Resolves when both checks passed; rejects with the more useful failure. */
  readonly passed: Promise<void>;
  /** The checks' failure, if they failed; undefined if they passed. */
  failure(): Promise<unknown>;
}

/**
 * The full read and the key derivation each take a few hundred ms; they run while psql is probed,
 * the plan is confirmed and the scratch database is created, but the load waits for both, so
 * nothing is ever loaded from a damaged file or with a wrong key. A damaged file is the more
 * useful report, so it wins over a wrong key.
 */
function startIntegrityChecks(context: RestoreContext, metadata: BackupMetadata, decryption: Decryption | undefined, signal: AbortSignal): IntegrityChecks {
  const {events} = context;
  const checkKey = async (): Promise<void> => {
    if (!decryption) {
      events.stage('decrypt', 'skipped', {detail: 'backup is not encrypted'});
      return;
    }
    events.stage('decrypt', 'started');
    try {
      await assertKeyFits(context, metadata, decryption);
    } catch (error) {
      events.stage('decrypt', 'failed');
      throw error;
    }
    events.stage('decrypt', 'finished', {detail: 'key accepted'});
  };
  const failed = new AbortController();
  const passed = Promise.allSettled([verifyStoredFile(context, metadata, signal), checkKey()]).then(([verified, keyChecked]) => {
    if (verified.status === 'rejected') throw verified.reason;
    if (keyChecked.status === 'rejected') throw keyChecked.reason;
  });
  passed.catch(() => failed.abort());
  return {failed: failed.signal, passed, failure: () => passed.then(() => undefined, (error: unknown) => error)};
}

/**
 * A dump loaded into a database of another encoding is converted or refused row by row; a
 * SQL_ASCII database restored into UTF8 fails on its first byte above 127. Refused before anything
 * is touched, with what to do.
 */
function assertEncodingFits(metadata: BackupMetadata, existing: ExistingDatabase | undefined): void {
  const recorded = metadata.database.properties?.encoding;
  if (!existing || !recorded || recorded === existing.encoding) return;
  throw new SynapseError('E_ENCODING_MISMATCH', {
    message: `unable to restore '${metadata.backupName}' into database ${nameForMessage(metadata.database.name)}: the backup's database has encoding ${recorded}, the target has ${existing.encoding}; the target was left as it was`,
    details: {backupEncoding: recorded, targetEncoding: existing.encoding},
  });
}

// ---- Step 3: a session on the server that owns the target for the restore's whole length ----

const DEFAULT_LOCK_TIMEOUT_MS = 10_000;

interface RestoreSession {
  readonly admin: DatabaseAdmin;
  readonly psql: ClientToolInfo;
  readonly existing: ExistingDatabase | undefined;
  readonly reclaimed: readonly string[];
}

/** SYNAPSE_BACKUP_LOCK_TIMEOUT_MS; a value that is not a positive whole number is said, and the default used. */
function lockTimeoutMs(settings: Settings, warn: (message: string) => void): number {
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
async function openRestoreSession(context: RestoreContext, target: DatabaseTarget): Promise<RestoreSession> {
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

// ---- Step 4: load into the scratch database ----

/** psql's words when `\restrict` made it refuse a meta-command (or an `\unrestrict` with a guessed key). */
const REFUSED_META_COMMAND = /backslash commands are restricted|\\unrestrict: wrong key/;

function explainLoadFailure(stage: RestoreStage, error: unknown, metadata: BackupMetadata, context: RestoreContext): SynapseError {
  if (isSynapseError(error) && REFUSED_META_COMMAND.test(String(error.details.stderr ?? ''))) {
    return new SynapseError('E_RESTORE_FAILED', {
      message: `unable to load '${metadata.backupName}': it contains a psql meta-command (such as \\! or \\connect) where pg_dump writes none; psql refused it, ran nothing of it, and the target was left as it was`,
      suggestion: 'The backup may have been planted or changed by someone who can write to the backup storage. Restore another backup and check who can write to the storage.',
      cause: error,
      details: {...error.details, refused: 'meta-command'},
    });
  }
  if (isSynapseError(error)) return error;
  const reason = (error as Error)?.message ?? String(error);
  switch (stage) {
    case 'decrypt': {
      return new SynapseError('E_WRONG_KEY', {message: `unable to decrypt '${metadata.backupName}': ${reason}; its checksum is intact, so the key is wrong`, cause: error});
    }
    case 'decompress': {
      return new SynapseError('E_INTEGRITY', {message: `unable to decompress '${metadata.backupName}': ${reason}`, cause: error});
    }
    case 'verify': {
      return storageError(error, context.storage, 'read backup', metadata.backupName);
    }
    default: {
      return new SynapseError('E_RESTORE_FAILED', {message: `unable to load '${metadata.backupName}': ${reason}`, cause: error});
    }
  }
}

export interface LoadOutcome {
  readonly plaintextBytes: number;
  /** What psql wrote to stderr on a load that succeeded: its warnings, counted by line, and the last of them. */
  readonly psqlWarnings: {readonly lines: number; readonly text: string};
}

/**
 * Streams the backup into `scratch` (a new, empty database): storage -> hash -> decrypt -> decompress -> hash ->
 * `\restrict` -> psql. Succeeds only when psql exited 0 and both checksums match again.
 */
export async function loadInto(
  context: RestoreContext,
  metadata: BackupMetadata,
  psqlTool: ClientToolInfo,
  scratch: DatabaseTarget,
  decryption: Decryption | undefined,
  filter: OwnershipFilterOptions = {owners: false, privileges: false},
): Promise<LoadOutcome> {
  const {events} = context;
  let source;
  try {
    source = await context.storage.get(metadata.backupName, {signal: context.signal});
  } catch (error) {
    events.stage('load', 'failed');
    throw storageError(error, context.storage, 'read backup', metadata.backupName);
  }
  const chain = new StreamChain(context.signal);
  const storedHash = new Sha256Observer();
  const decompress = createDecompressStream(metadata.compression.algorithm);
  const plaintextHash = new Sha256Observer();
  const plaintextCount = new ByteCounter((bytes) => events.stage('load', 'progress', {bytes}));
  const restricted = new RestrictedDumpStream();
  let decrypt: Transform | undefined;
  try {
    decrypt = decryption?.provider.createDecryptStream(decryption.key, metadata.encryption!);
  } catch (error) {
    source.destroy();
    throw new SynapseError('E_PLUGIN', {message: `unable to decrypt '${metadata.backupName}': ${(error as Error).message}`, cause: error});
  }

  // Started last, once every stage exists, so nothing can fail between its start and the chain.
  const psql = startPsql(psqlTool, scratch, chain.signal);
  events.stage('load', 'started', {detail: scratch.database});
  try {
    // psql's exit status decides too: a psql that read everything and then failed must stop the swap.
    await chain.run(
      [
        {stage: 'verify', stream: source},
        {stage: 'verify', stream: storedHash},
        ...(decrypt ? [{stage: 'decrypt' as const, stream: decrypt}] : []),
        {stage: 'decompress', stream: decompress},
        {stage: 'load', stream: plaintextHash},
        {stage: 'load', stream: plaintextCount},
        // After the checksums, which are of the dump as it was taken.
        ...(filter.owners || filter.privileges ? [{stage: 'load' as const, stream: new OwnershipFilter(filter)}] : []),
        {stage: 'load', stream: restricted},
        {stage: 'load', stream: psql.input},
      ],
      [{stage: 'load', promise: psql.completion}],
    );
  } catch (error) {
    events.stage('load', 'failed');
    psql.kill();
    await psql.completion.catch(() => {});
    if (!(error instanceof StreamChainFailure)) throw error;
    if (error.cancelled) throw cancelled();
    throw explainLoadFailure(error.stage as RestoreStage, error.error, metadata, context).with({details: {stage: error.stage}});
  }
  if (storedHash.digest !== metadata.checksums.stored) {
    events.stage('load', 'failed');
    throw new SynapseError('E_INTEGRITY', {
      message: `unable to restore '${metadata.backupName}': the file changed after it was verified (its checksum differs on the second read); the target was not touched`,
      details: {expected: metadata.checksums.stored, actual: storedHash.digest},
    });
  }
  if (plaintextHash.digest !== metadata.checksums.plaintext) {
    // The stored bytes are the ones written at backup time, so decrypting or decompressing them went wrong here.
    events.stage('load', 'failed');
    throw new SynapseError('E_INTEGRITY', {
      message: `unable to restore '${metadata.backupName}': the stored file is intact, but decoding it gave ${plaintextCount.bytes} bytes of dump that do not match the ${metadata.sizes.plaintextBytes} bytes backed up; the target was not touched`,
      suggestion: 'Restore this backup with the stock-tools recipe in the README (openssl, gunzip or zstd, psql) and report this as a synapse-backup bug.',
      details: {expected: metadata.checksums.plaintext, actual: plaintextHash.digest},
    });
  }
  events.stage('load', 'finished', {bytes: plaintextCount.bytes});
  const said = psql.said();
  if (said.lines > 0) events.warning(`psql wrote ${said.lines} line${said.lines === 1 ? '' : 's'} of warnings while loading '${metadata.backupName}' (the load succeeded)${said.lines > 20 ? '; the last 20' : ''}:\n${said.text}`);
  return {plaintextBytes: plaintextCount.bytes, psqlWarnings: said};
}

// ---- Roles for a new server ----

/** Decrypts a small document sealed with the backup's cipher and key (see run-backup's encryptSmall). */
function decryptSmall(decryption: Decryption, metadata: BackupMetadata, sealed: Buffer): Promise<Buffer> {
  return transformWhole(decryption.provider.createDecryptStream(decryption.key, metadata.encryption!), sealed);
}

/**
 * Creates the roles the backup records and this server lacks, never touching existing ones.
 * What a created role may do beyond logging in comes only from metadata a key vouches for: without
 * one, anyone who can write to the storage could have written the list (see createMissingRoles).
 */
async function createRecordedRoles(
  context: RestoreContext,
  admin: DatabaseAdmin,
  metadata: BackupMetadata,
  decryption: Decryption | undefined,
  trust: {authentic: boolean; superuserEquivalent: boolean},
): Promise<string[]> {
  const {events} = context;
  const globals = metadata.globals;
  if (!globals) {
    events.warning(`backup '${metadata.backupName}' records no roles (it was taken before synapse-backup recorded them): --create-roles creates none`);
    return [];
  }
  let hashes: Record<string, string> = {};
  if (globals.passwords === 'included' && decryption) {
    try {
      const parsed: unknown = JSON.parse((await decryptSmall(decryption, metadata, Buffer.from(globals.passwordHashes!, 'base64'))).toString('utf8'));
      if (typeof parsed === 'object' && parsed !== null && Object.values(parsed).every((hash) => typeof hash === 'string')) hashes = parsed as Record<string, string>;
    } catch (error) {
      events.warning(`unable to decrypt the password hashes recorded in '${metadata.backupName}' (${(error as Error).message}); the roles are created without passwords`);
    }
  } else if (globals.passwords !== 'included') {
    events.warning(`backup '${metadata.backupName}' holds no password hashes (${globals.passwords === 'omitted-unencrypted' ? 'it is not encrypted' : 'the role that took it could not read them'}): set the passwords of the created roles yourself`);
  }
  const {created, withheld} = await admin.createMissingRoles(globals, hashes, {authentic: trust.authentic, superuserEquivalent: trust.superuserEquivalent});
  if (withheld.length > 0) {
    const why = trust.authentic
      ? `existing roles are never changed; SUPERUSER, REPLICATION and BYPASSRLS need a superuser to grant them; memberships that give the server's operating-system account need ${SUPERUSER_EQUIVALENT_FLAG}`
      : 'existing roles are never changed; privileged attributes, CREATEROLE, memberships in roles that existed before and role settings need metadata authenticated by a key';
    events.warning(`not granted: ${withheld.join(', ')} (${why}); grant them yourself if they are needed`);
  }
  return created;
}

// ---- The whole restore ----

/**
 * The error to report: a failed integrity check explains everything after it; a cancellation is
 * reported as one, whatever it tore down; otherwise the failure itself.
 */
async function reportedError(error: unknown, checks: IntegrityChecks | undefined, signal: AbortSignal): Promise<unknown> {
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
