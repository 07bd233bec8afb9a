import {hostname} from 'node:os';
import {PassThrough, type Transform} from 'node:stream';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import type {Settings} from '../config/index.js';
import {SynapseError, cancelledError, isSynapseError, noPluginProvides, pluginFailed} from '../errors/index.js';
import type {BackupStage, ProgressEvents} from '../events/index.js';
import {acquireStorageLock, describeTakeover} from '../lock/index.js';
import {METADATA_FORMAT_VERSION, serializeMetadata, type BackupMetadata, type RecordedDatabaseProperties, type RecordedGlobals, type RecordedWalRange} from '../metadata/index.js';
import {FORMAT_OF_METHOD, metadataKeyFor, nextFreeBackupName, pendingKeyFor, type BackupMethod, type BackupType} from '../naming/index.js';
import {BLOCK_SIZE, BlockPool, ByteCounter, DumpCompletionObserver, Sha256Observer, StreamChain, StreamChainFailure, TarCompletionObserver, createCompressStream, transformWhole} from '../pipeline/index.js';
import {
  DatabaseTarget,
  DumpSnapshot,
  assertArchivingFor,
  assertDumpCanReadServer,
  clientToolCommand,
  probeClientTool,
  readPhysicalServerFacts,
  readServerInfo,
  startPgBaseBackup,
  startPgDump,
  type ClusterGlobals,
  type DatabaseFingerprint,
  type DumpProcess,
  type PhysicalServerFacts,
} from '../postgres/index.js';
import {listAll, storageError, writeSmallObject} from '../storage/index.js';
import {documentAuthenticatorFor} from '../trust/index.js';
import {claimArchive, type WalCodec} from '../wal/index.js';
import {awaitArchivedSegment, walRangeOf} from './physical-backup.js';

export interface BackupContext {
  readonly settings: Settings;
  readonly storage: StorageBackend;
  /** Required when settings.encryption is set. */
  readonly encryption: EncryptionProvider | undefined;
  readonly events: ProgressEvents;
  readonly signal: AbortSignal;
  readonly toolVersion: string;
  readonly now?: () => Date;
  /** How the WAL archive is read; required for a physical backup, which waits for its stop segment there. */
  readonly walCodec?: WalCodec;
}

export interface BackupResult {
  readonly name: string;
  readonly metadataKey: string;
  readonly location: string;
  readonly metadata: BackupMetadata;
}

interface StreamedDump {
  readonly object: ObjectInfo;
  readonly plaintextBytes: number;
  readonly storedBytes: number;
  readonly plaintextSha256: string;
  readonly storedSha256: string;
  /** A base backup's manifest, its end (where its WAL range is). */
  readonly manifestTail?: Buffer;
}

function cancelled(): SynapseError {
  return cancelledError('finish the backup', 'Nothing was published; earlier backups are untouched.');
}

function explainStageFailure(stage: BackupStage, error: unknown, context: BackupContext, name: string): SynapseError {
  if (isSynapseError(error)) return error;
  switch (stage) {
    case 'store': {
      return storageError(error, context.storage, 'store backup', name);
    }
    case 'encrypt': {
      return pluginFailed(`encrypt backup '${name}' with '${context.encryption?.id}'`, error);
    }
    default: {
      return new SynapseError('E_INTERNAL', {message: `unable to ${stage} backup '${name}': ${(error as Error).message}`, cause: error});
    }
  }
}

/** pg_dump, started before preflight finishes, with the means to stop it. */
interface EarlyDump {
  readonly process: DumpProcess;
  readonly blocks: BlockPool;
  /** Aborts the pipeline and pg_dump; linked to the caller's signal. */
  readonly controller: AbortController;
  /** The row counts and sequences of the snapshot pg_dump dumps, or why there are none. */
  readonly fingerprint: Promise<DatabaseFingerprint | {readonly unavailable: string; readonly quiet?: true}>;
  /** The roles the database needs, or why there are none; their password hashes already sealed (a key derivation of its own, run during the dump). */
  readonly globals: {readonly roles: ClusterGlobals | {readonly unavailable: string}; readonly sealedPasswordHashes: Promise<Buffer> | undefined};
  readonly properties: RecordedDatabaseProperties | {readonly unavailable: string};
  /** Frees the pipe, stops pg_dump if it still runs and ends the snapshot; harmless after a finished pipeline. */
  abandon(): Promise<void>;
}

/**
 * Starts pg_dump before preflight has passed: its connection and catalogue reads take as long as
 * preflight's own checks, and it writes only into our pipe, which nothing reads until preflight
 * has passed. Preflight's verdict still decides: a failed check stops pg_dump and is what is reported.
 *
 * pg_dump dumps a snapshot exported from a transaction of ours, in which the fingerprint is
 * counted meanwhile: the counts describe exactly the data in the dump. Where no snapshot can be
 * exported, pg_dump takes its own and the backup has no fingerprint.
 */
async function startDumpEarly(context: BackupContext, target: DatabaseTarget): Promise<EarlyDump> {
  const controller = new AbortController();
  const abortFromOutside = (): void => controller.abort();
  context.signal.addEventListener('abort', abortFromOutside, {once: true});
  const blocks = new BlockPool(BLOCK_SIZE);
  let snapshot: DumpSnapshot | undefined;
  let unavailable = '';
  try {
    // Password hashes are only ever stored encrypted, so they are only read for an encrypted backup.
    snapshot = await DumpSnapshot.export(target, {passwordHashes: context.encryption !== undefined});
  } catch (error) {
    unavailable = `unable to export a snapshot for pg_dump: ${(error as Error).message}`;
  }
  let dump: DumpProcess;
  try {
    dump = await startPgDump({tool: 'pg_dump', command: clientToolCommand('pg_dump', context.settings.pgBinDir)}, target, controller.signal, blocks, {snapshot: snapshot?.id});
  } catch (error) {
    context.signal.removeEventListener('abort', abortFromOutside);
    await snapshot?.close();
    throw error;
  }
  const hashes = snapshot?.passwordHashes;
  const sealed = hashes && context.encryption ? encryptSmall(context, Buffer.from(JSON.stringify(hashes), 'utf8')) : undefined;
  // Awaited when the metadata is written; a failure then is that run's failure, not an unhandled rejection now.
  sealed?.catch(() => {});
  const fingerprint = !snapshot
    ? Promise.resolve({unavailable})
    : context.settings.fingerprint
      ? snapshot.fingerprint().catch((error: unknown) => ({unavailable: `unable to count rows in pg_dump's snapshot: ${(error as Error).message}`}))
      : Promise.resolve({unavailable: 'BACKUP_FINGERPRINT=off', quiet: true});
  // Until a pipeline owns the output, a failing pg_dump must not crash the process; preflight or the pipeline reports it.
  dump.output.on('error', () => {});
  let exited = false;
  dump.completion.then(() => (exited = true), () => (exited = true));
  return {
    process: dump,
    blocks,
    controller,
    fingerprint,
    globals: {roles: snapshot?.globals ?? {unavailable}, sealedPasswordHashes: sealed},
    properties: snapshot?.properties ?? {unavailable},
    async abandon() {
      context.signal.removeEventListener('abort', abortFromOutside);
      // An output nobody read would keep its pipe, and the process, open.
      dump.output.destroy();
      if (!exited) {
        controller.abort();
        dump.kill();
        await dump.completion.catch(() => {});
      }
      // The counting must finish (or fail) on its connection before the transaction ends.
      await fingerprint;
      await snapshot?.close();
    },
  };
}

/** pg_basebackup, started once preflight has passed (its checkpoint is the server's work, not to be asked for in vain). */
async function startBaseBackup(context: BackupContext, target: DatabaseTarget, label: string): Promise<EarlyDump> {
  const controller = new AbortController();
  const abortFromOutside = (): void => controller.abort();
  context.signal.addEventListener('abort', abortFromOutside, {once: true});
  const blocks = new BlockPool(BLOCK_SIZE);
  let backup: DumpProcess;
  try {
    backup = await startPgBaseBackup({tool: 'pg_basebackup', command: clientToolCommand('pg_basebackup', context.settings.pgBinDir)}, target, controller.signal, blocks, {
      checkpoint: context.settings.physical.checkpoint,
      label,
    });
  } catch (error) {
    context.signal.removeEventListener('abort', abortFromOutside);
    throw error;
  }
  backup.output.on('error', () => {});
  let exited = false;
  backup.completion.then(() => (exited = true), () => (exited = true));
  const notRecorded = {unavailable: 'a physical backup holds the whole cluster'};
  return {
    process: backup,
    blocks,
    controller,
    fingerprint: Promise.resolve({...notRecorded, quiet: true as const}),
    globals: {roles: notRecorded, sealedPasswordHashes: undefined},
    properties: notRecorded,
    async abandon() {
      context.signal.removeEventListener('abort', abortFromOutside);
      backup.output.destroy();
      if (!exited) {
        controller.abort();
        backup.kill();
        await backup.completion.catch(() => {});
      }
    },
  };
}

/**
 * pg_dump -> count, hash -> compress (gzip or zstd, on all cores) -> encrypt -> count, hash -> storage, as one stream pipeline.
 * Resolves only when pg_dump exited 0, every stage finished and the storage published the object.
 */
async function streamDump(context: BackupContext, early: EarlyDump, name: string, encrypt: Transform | undefined, method: BackupMethod): Promise<StreamedDump> {
  const {events, settings, storage} = context;
  const {process: dump, blocks, controller} = early;
  const stagesInOrder: BackupStage[] = ['dump', 'compress', 'encrypt', 'checksum', 'store'];
  const finished = new Set<BackupStage>();
  const finish = (stage: BackupStage, facts: {bytes?: number; detail?: string} = {}): void => {
    finished.add(stage);
    events.stage(stage, 'finished', facts);
  };

  const plaintextCount = new ByteCounter((bytes) => events.stage('dump', 'progress', {bytes}));
  const plaintextHash = new Sha256Observer();
  // pg_dump's exit status is not the only witness: a dump without its completion block is never published.
  const completion = method === 'physical' ? new TarCompletionObserver({
    keep: ['backup_manifest'],
    refuseIncomplete: () =>
      new SynapseError('E_DUMP_FAILED', {
        message: `unable to take a base backup: pg_basebackup exited 0, but its tar ends without the end-of-archive marker, so it is incomplete; nothing was published`,
        suggestion: 'Check that PG_BIN_DIR points at the real pg_basebackup (not a wrapper that hides its failures) and run the backup again; earlier backups are untouched.',
      }),
  }) : new DumpCompletionObserver({
    refuseIncomplete: () =>
      new SynapseError('E_DUMP_FAILED', {
        message: `unable to dump database '${settings.database.database}': pg_dump exited 0, but its output ends without pg_dump's "dump complete" line, so the dump is incomplete; nothing was published`,
        suggestion: 'Check that PG_BIN_DIR points at the real pg_dump (not a wrapper that hides its failures) and run the backup again; earlier backups are untouched.',
      }),
  });
  const compressedCount = new ByteCounter((bytes) => events.stage('compress', 'progress', {bytes}));
  const encryptedCount = encrypt ? new ByteCounter((bytes) => events.stage('encrypt', 'progress', {bytes})) : undefined;
  const storedHash = new Sha256Observer();
  const storedCount = new ByteCounter((bytes) => events.stage('store', 'progress', {bytes}));
  const body = new PassThrough();
  const compress = createCompressStream(settings.compression, {pool: blocks});

  for (const stage of stagesInOrder) {
    if (stage === 'encrypt' && !context.encryption) {
      finished.add(stage);
      events.stage(stage, 'skipped', {detail: 'no key configured'});
    } else events.stage(stage, 'started');
  }
  dump.gate.once('end', () => finish('dump', {bytes: plaintextCount.bytes}));
  compress.once('end', () => finish('compress', {bytes: compressedCount.bytes}));
  encrypt?.once('end', () => finish('encrypt', {bytes: encryptedCount!.bytes}));

  // The early pg_dump's controller follows the caller's signal; the chain follows it.
  const chain = new StreamChain(controller.signal);
  const stored = storage.put(name, body, {ifNotExists: true, private: true, immutable: true, signal: chain.signal});
  try {
    const [object] = (await chain.run(
      [
        {stage: 'dump', stream: dump.output},
        {stage: 'dump', stream: dump.gate},
        {stage: 'dump', stream: plaintextCount},
        {stage: 'checksum', stream: plaintextHash},
        {stage: 'dump', stream: completion},
        {stage: 'compress', stream: compress},
        {stage: 'compress', stream: compressedCount},
        ...(encrypt ? [{stage: 'encrypt' as const, stream: encrypt}, {stage: 'encrypt' as const, stream: encryptedCount!}] : []),
        {stage: 'checksum', stream: storedHash},
        {stage: 'store', stream: storedCount},
        {stage: 'store', stream: body},
      ],
      // A dump counts only when pg_dump exited 0, and only once the storage published it.
      [{stage: 'store', promise: stored}, {stage: 'dump', promise: dump.completion}],
    )) as [ObjectInfo];
    finish('checksum', {detail: `sha256 ${storedHash.digest}`});
    finish('store', {bytes: storedCount.bytes, detail: `${storage.location}/${name}`});
    const manifestTail = completion instanceof TarCompletionObserver ? completion.member('backup_manifest') : undefined;
    return {object, plaintextBytes: plaintextCount.bytes, storedBytes: storedCount.bytes, plaintextSha256: plaintextHash.digest, storedSha256: storedHash.digest, ...(manifestTail ? {manifestTail} : {})};
  } catch (error) {
    await early.abandon();
    // put() removes its own staging object on failure; this covers a put that finished while another stage failed.
    if (await stored.then(() => true, () => false)) await storage.delete(name).catch(() => {});
    const cancelledByCaller = context.signal.aborted;
    const stage = error instanceof StreamChainFailure ? (error.stage as BackupStage) : undefined;
    // Every stage that was under way ends now, and says how: the view must not guess.
    for (const other of stagesInOrder) {
      if (finished.has(other)) continue;
      if (cancelledByCaller) events.stage(other, 'skipped', {detail: 'cancelled'});
      else events.stage(other, other === stage ? 'failed' : 'skipped', {detail: other === stage ? undefined : 'stopped'});
    }
    if (cancelledByCaller) throw cancelled();
    if (!(error instanceof StreamChainFailure)) throw error;
    throw explainStageFailure(stage!, error.error, context, name).with({details: {stage}});
  }
}

/** Encrypts a small document with the backup's cipher and key, as the backup itself is encrypted. */
function encryptSmall(context: BackupContext, plaintext: Buffer): Promise<Buffer> {
  return transformWhole(context.encryption!.createEncryptStream(context.settings.encryption!.key.reveal(), {iterations: context.settings.encryption!.iterations}), plaintext);
}

/** The globals for the metadata; password hashes only encrypted, and only when the backup is. */
async function recordGlobals(context: BackupContext, read: EarlyDump['globals']): Promise<RecordedGlobals | undefined> {
  if ('unavailable' in read.roles) return undefined;
  const {roles, memberships, settings} = read.roles;
  const base = {roles, memberships, settings};
  if (!context.encryption) return {...base, passwords: 'omitted-unencrypted'};
  if (!read.sealedPasswordHashes) return {...base, passwords: 'omitted-not-readable'};
  return {...base, passwords: 'included', passwordHashes: (await read.sealedPasswordHashes).toString('base64')};
}

/** Runs one backup end to end; a failure at any point leaves no backup behind and earlier ones untouched. */
export async function runBackup(context: BackupContext, request: {type: BackupType; method?: BackupMethod}): Promise<BackupResult> {
  const {settings, storage, events} = context;
  const method = request.method ?? 'logical';
  if (method === 'physical' && !context.walCodec) throw new SynapseError('E_INTERNAL', {message: 'a physical backup needs the WAL archive codec'});
  const now = context.now ?? (() => new Date());
  const startedAt = now();
  if (settings.encryption && !context.encryption) {
    throw noPluginProvides('encrypt', `BACKUP_ENCRYPTION_PROVIDER '${settings.encryption.provider}'`);
  }
  const target = settings.database;
  // Built first: its key derivation (PBKDF2, a few hundred ms of CPU) then runs while preflight waits on the server.
  const encrypt: Transform | undefined = context.encryption?.createEncryptStream(settings.encryption!.key.reveal(), {iterations: settings.encryption!.iterations});
  // A derivation failure before the pipeline exists must not crash the process; the pipeline reports it.
  encrypt?.on('error', () => {});
  // The metadata's MAC key takes a PBKDF2 of its own; derived meanwhile too.
  const authenticator = documentAuthenticatorFor(settings.encryption);
  authenticator?.prepare();
  events.stage('preflight', 'started');
  const starting = method === 'logical' ? startDumpEarly(context, target) : undefined;
  // Observed at once, so that a failure to start is not reported as unhandled while preflight runs.
  starting?.catch(() => {});
  const tool = method === 'logical' ? 'pg_dump' : 'pg_basebackup';
  let preflight;
  try {
    const [pgDump, server, physicalFacts] = await Promise.all([
      probeClientTool(tool, settings.pgBinDir),
      readServerInfo(target),
      method === 'physical' ? readPhysicalServerFacts(target) : undefined,
    ]);
    assertDumpCanReadServer(pgDump, server.major, server.version);
    if (physicalFacts) {
      assertArchivingFor(physicalFacts);
      // The archive this backup's WAL goes to must be this cluster's: one claimed by another is refused now, not after the backup.
      await claimArchive(storage, physicalFacts.systemIdentifier, context.walCodec!.keys, now(), {readOnly: true});
    }
    if (context.signal.aborted) throw cancelled();
    const early = await starting;
    preflight = {pgDump, server, early, physicalFacts, lock: await acquireStorageLock(storage, 'backup run')};
  } catch (error) {
    events.stage('preflight', 'failed');
    encrypt?.destroy();
    await (await starting?.catch(() => undefined))?.abandon();
    throw error;
  }
  const {pgDump, server, lock, physicalFacts} = preflight;
  let early: EarlyDump | undefined = preflight.early;
  if (lock.tookOverFrom) events.warning(describeTakeover(lock.tookOverFrom));
  if (lock.limitation) events.warning(lock.limitation);
  events.stage('preflight', 'finished', {detail: `PostgreSQL ${server.version}, ${tool} ${pgDump.version}, lock held`});
  try {
    let taken: Set<string>;
    try {
      taken = new Set((await listAll(storage, ['backup_'])).map((object) => object.key));
    } catch (error) {
      throw storageError(error, storage, 'list backups in');
    }
    const name = nextFreeBackupName(
      {type: request.type, startedAt: new Date(Math.floor(startedAt.getTime() / 1000) * 1000), compression: settings.compression.algorithm, encrypted: Boolean(context.encryption), format: FORMAT_OF_METHOD[method]},
      taken,
    );
    // Written before anything is published: a data file with this marker and no metadata is what a
    // killed run left, which cleanup removes; one without either lost its metadata and is kept.
    const pendingKey = pendingKeyFor(name);
    try {
      await writeSmallObject(storage, pendingKey, `${JSON.stringify({backupName: name, pid: process.pid, hostname: hostname(), startedAt: startedAt.toISOString()})}\n`, {ifNotExists: true, private: true});
    } catch (error) {
      throw storageError(error, storage, 'mark the start of backup', name);
    }
    let streamed: StreamedDump;
    let walRange: RecordedWalRange | undefined;
    try {
      early ??= await startBaseBackup(context, target, `synapse-backup ${name}`);
      streamed = await streamDump(context, early, name, encrypt, method);
      if (method === 'physical') {
        walRange = walRangeOf(streamed.manifestTail, physicalFacts as PhysicalServerFacts, now());
        // A base backup is a backup only once the WAL up to its stop position is archived: until then it restores to nothing consistent.
        events.stage('metadata', 'started', {detail: `waiting for ${walRange.stopWalFile} in the WAL archive`});
        await awaitArchivedSegment(storage, context.walCodec!, walRange.stopWalFile, {timeoutMs: settings.physical.walWaitMs, signal: context.signal});
      }
    } catch (error) {
      if (method === 'physical') await storage.delete(name).catch(() => {});
      await storage.delete(pendingKey).catch(() => {});
      if (method === 'physical') events.stage('metadata', 'failed');
      throw error;
    }

    if (method === 'logical') events.stage('metadata', 'started');
    const fingerprint = await early.fingerprint;
    if ('unavailable' in fingerprint && !('quiet' in fingerprint)) events.warning(`backup '${name}' has no fingerprint (${fingerprint.unavailable}); a test restore of it can check that it loads, not that every row arrived`);
    const globals = await recordGlobals(context, early.globals);
    if ('unavailable' in early.properties && method === 'logical') events.warning(`backup '${name}' does not record the database's own properties (${early.properties.unavailable}); a restore onto a new server creates it with the server's defaults`);
    if (!globals && method === 'logical') events.warning(`backup '${name}' does not record the roles it needs (${(early.globals.roles as {unavailable: string}).unavailable}); restore --create-roles cannot recreate them`);
    const completedAt = now();
    const unsigned: BackupMetadata = {
      formatVersion: METADATA_FORMAT_VERSION,
      backupName: name,
      backupType: request.type,
      createdAt: startedAt.toISOString(),
      completedAt: completedAt.toISOString(),
      durationMs: completedAt.getTime() - startedAt.getTime(),
      database: {name: server.database, serverVersion: server.version, serverVersionNum: server.versionNum, ...('unavailable' in early.properties ? {} : {properties: early.properties})},
      dump: method === 'logical' ? {tool: 'pg_dump', version: pgDump.version, format: 'plain'} : {tool: 'pg_basebackup', version: pgDump.version, format: 'tar', wal: 'archive'},
      sizes: {plaintextBytes: streamed.plaintextBytes, storedBytes: streamed.storedBytes},
      checksums: {algorithm: 'sha256', stored: streamed.storedSha256, plaintext: streamed.plaintextSha256},
      compression: {algorithm: settings.compression.algorithm, level: settings.compression.level},
      encryption: context.encryption ? context.encryption.describe({iterations: settings.encryption!.iterations}) : null,
      tool: {name: 'synapse-backup', version: context.toolVersion},
      ...('unavailable' in fingerprint ? {} : {fingerprint: {takenIn: 'dump-snapshot' as const, ...fingerprint}}),
      ...(globals ? {globals} : {}),
      ...(walRange ? {physical: walRange} : {}),
    };
    const metadataKey = metadataKeyFor(name);
    let metadata: BackupMetadata;
    try {
      metadata = authenticator ? await authenticator.sign(unsigned) : unsigned;
      // Written last: a backup exists once its metadata does.
      await writeSmallObject(storage, metadataKey, serializeMetadata(metadata), {ifNotExists: true, private: true, immutable: true});
    } catch (error) {
      events.stage('metadata', 'failed');
      await storage.delete(metadataKey).catch(() => {});
      await storage.delete(name).catch(() => {});
      await storage.delete(pendingKey).catch(() => {});
      throw storageError(error, storage, 'write metadata', metadataKey);
    }
    await storage.delete(pendingKey).catch((error: unknown) => {
      events.warning(`unable to remove the run marker '${pendingKey}': ${(error as Error).message}; the next cleanup removes it`);
    });
    events.stage('metadata', 'finished', {detail: metadataKey});
    return {name, metadataKey, location: storage.location, metadata};
  } finally {
    encrypt?.destroy();
    await early?.abandon();
    await lock.release().catch(() => {});
  }
}
