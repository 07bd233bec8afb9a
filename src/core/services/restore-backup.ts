import {Writable, type Transform} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import type {StorageBackend} from '../../contracts/storage.js';
import type {Settings} from '../config/index.js';
import {SynapseError, errnoCode, isSynapseError} from '../errors/index.js';
import type {ProgressEvents, RestoreStage} from '../events/index.js';
import {parseMetadata, type BackupMetadata} from '../metadata/index.js';
import {isBackupName, metadataKeyFor} from '../naming/index.js';
import {ByteCounter, COMPRESSION_FORMATS, FailureRecorder, Sha256Observer, compressedMagic, createDecompressStream} from '../pipeline/index.js';
import {DatabaseAdmin, DatabaseTarget, derivedDatabaseName, probeClientTool, startPsql, type ClientToolInfo, type ExistingDatabase} from '../postgres/index.js';
import {readSmallObject, storageError} from '../storage/index.js';

export interface RestoreContext {
  readonly settings: Settings;
  readonly storage: StorageBackend;
  readonly encryptionProviders: ReadonlyMap<string, EncryptionProvider>;
  readonly events: ProgressEvents;
  readonly signal: AbortSignal;
  readonly now?: () => Date;
}

export interface RestorePlan {
  readonly backupName: string;
  readonly database: string;
  readonly targetExists: boolean;
  /** Where the current database is kept after the swap. */
  readonly previousDatabase: string | undefined;
  readonly metadata: BackupMetadata;
}

export interface RestoreRequest {
  readonly name: string;
  /**
   * Last chance to stop before any database is touched; rejects to cancel. It runs while the
   * backup's checksum and key are being checked; `signal` aborts it when one of those fails.
   */
  readonly confirm: (plan: RestorePlan, signal: AbortSignal) => Promise<void>;
}

export interface RestoreResult extends RestorePlan {
  readonly plaintextBytes: number;
  readonly durationMs: number;
}

function cancelled(): SynapseError {
  return new SynapseError('E_CANCELLED', {message: 'unable to finish the restore: cancelled', suggestion: 'The target database was left as it was.'});
}

function timestamp(at: Date): string {
  return at.toISOString().replaceAll(/[-:]/g, '').replace('T', '_').slice(0, 15);
}

/** Only a bare backup name is accepted: no paths, no `..`, nothing this tool did not name. */
export function assertRestorableName(name: string): void {
  if (!isBackupName(name)) {
    throw new SynapseError('E_USAGE', {
      message: `unable to restore '${name}': not a backup name`,
      suggestion: 'Pass a backup name exactly as `synapse-backup backup list` shows it, without a directory.',
    });
  }
}

async function loadMetadata(storage: StorageBackend, name: string): Promise<BackupMetadata> {
  assertRestorableName(name);
  let exists;
  try {
    exists = await storage.stat(name);
  } catch (error) {
    throw storageError(error, storage, 'find backup', name);
  }
  if (!exists) throw new SynapseError('E_BACKUP_NOT_FOUND', {message: `unable to restore '${name}': no such backup in '${storage.location}'`});
  let text: string;
  try {
    text = await readSmallObject(storage, metadataKeyFor(name));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      throw new SynapseError('E_METADATA', {message: `unable to restore '${name}': its metadata '${metadataKeyFor(name)}' is missing, so its integrity cannot be checked`});
    }
    throw storageError(error, storage, 'read metadata', metadataKeyFor(name));
  }
  return parseMetadata(name, text);
}

function decryptionFor(context: RestoreContext, metadata: BackupMetadata): {provider: EncryptionProvider; key: string} | undefined {
  if (!metadata.encryption) return undefined;
  if (!context.settings.encryption) {
    throw new SynapseError('E_KEY_REQUIRED', {message: `unable to restore '${metadata.backupName}': it is encrypted and no key is configured`});
  }
  const provider = context.encryptionProviders.get(metadata.encryption.provider);
  if (!provider) {
    throw new SynapseError('E_PLUGIN', {message: `unable to decrypt '${metadata.backupName}': no installed plugin provides cipher '${metadata.encryption.provider}'`});
  }
  return {provider, key: context.settings.encryption.key.reveal()};
}

/** Reads the whole stored file and checks its size and SHA-256 against the metadata. */
async function verifyStoredFile(context: RestoreContext, metadata: BackupMetadata): Promise<void> {
  const {storage, events} = context;
  const name = metadata.backupName;
  events.stage('verify', 'started');
  const counter = new ByteCounter((bytes) => events.stage('verify', 'progress', {bytes}));
  const hash = new Sha256Observer();
  try {
    const sink = new Writable({write: (_chunk, _encoding, callback) => callback()});
    await pipeline(await storage.get(name, {signal: context.signal}), counter, hash, sink, {signal: context.signal});
  } catch (error) {
    events.stage('verify', 'failed');
    if (context.signal.aborted) throw cancelled();
    throw storageError(error, storage, 'read backup', name);
  }
  const problem =
    counter.bytes === metadata.sizes.storedBytes
      ? hash.digest === metadata.checksums.stored
        ? undefined
        : `SHA-256 ${hash.digest} does not match ${metadata.checksums.stored} recorded at backup time`
      : `it has ${counter.bytes} bytes, the metadata records ${metadata.sizes.storedBytes}${counter.bytes < metadata.sizes.storedBytes ? ' (truncated)' : ''}`;
  if (problem) {
    events.stage('verify', 'failed');
    throw new SynapseError('E_INTEGRITY', {message: `unable to restore '${name}': the stored file is damaged: ${problem}`, details: {expected: metadata.checksums.stored, actual: hash.digest}});
  }
  events.stage('verify', 'finished', {bytes: counter.bytes, detail: `sha256 ${hash.digest}`});
}

/**
 * Decrypts the first bytes and looks for the compressor's magic number. The file's checksum is
 * already known to be right, so garbage here means the key is wrong, not that the file is damaged.
 */
async function assertKeyFits(context: RestoreContext, metadata: BackupMetadata, decryption: {provider: EncryptionProvider; key: string}): Promise<void> {
  const decipher = decryption.provider.createDecryptStream(decryption.key, metadata.encryption!);
  const headLength = Math.min(metadata.sizes.storedBytes, 4096);
  const head: Buffer[] = [];
  decipher.on('data', (chunk: Buffer) => head.push(chunk));
  const source = await context.storage.get(metadata.backupName, {offset: 0, length: headLength});
  const input = Buffer.concat(await source.toArray());
  const decrypted = new Promise<void>((resolve, reject) => {
    decipher.once('error', reject);
    decipher.once('end', resolve);
    // A whole small file can be finished; for a larger one the blocks before the last suffice.
    if (headLength === metadata.sizes.storedBytes) decipher.end(input);
    else decipher.write(input, () => resolve());
  });
  let decryptError: unknown;
  await decrypted.catch((error: unknown) => {
    decryptError = error;
  });
  decipher.destroy();
  const magic = compressedMagic(metadata.compression.algorithm);
  const plain = Buffer.concat(head);
  if (decryptError !== undefined || plain.length < magic.length || !plain.subarray(0, magic.length).equals(magic)) {
    throw new SynapseError('E_WRONG_KEY', {
      message: `unable to decrypt '${metadata.backupName}': the configured key is not the one it was encrypted with (its checksum is intact)`,
    });
  }
}

function explainLoadFailure(stage: RestoreStage, error: unknown, metadata: BackupMetadata, context: RestoreContext): SynapseError {
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

/** Streams the backup into `scratch`: storage -> hash -> decrypt -> decompress -> hash -> psql. */
async function loadInto(
  context: RestoreContext,
  metadata: BackupMetadata,
  psqlTool: ClientToolInfo,
  scratch: DatabaseTarget,
  decryption: {provider: EncryptionProvider; key: string} | undefined,
): Promise<number> {
  const {events} = context;
  let source;
  try {
    source = await context.storage.get(metadata.backupName, {signal: context.signal});
  } catch (error) {
    events.stage('load', 'failed');
    throw storageError(error, context.storage, 'read backup', metadata.backupName);
  }
  const controller = new AbortController();
  const abortFromOutside = (): void => controller.abort();
  context.signal.addEventListener('abort', abortFromOutside, {once: true});
  const failures = new FailureRecorder();
  const storedHash = new Sha256Observer();
  const decompress = createDecompressStream(metadata.compression.algorithm);
  const plaintextHash = new Sha256Observer();
  const plaintextCount = new ByteCounter((bytes) => events.stage('load', 'progress', {bytes}));
  let decrypt: Transform | undefined;
  try {
    decrypt = decryption?.provider.createDecryptStream(decryption.key, metadata.encryption!);
  } catch (error) {
    source.destroy();
    context.signal.removeEventListener('abort', abortFromOutside);
    throw new SynapseError('E_PLUGIN', {message: `unable to decrypt '${metadata.backupName}': ${(error as Error).message}`, cause: error});
  }

  // Started last, once every stage exists, so nothing can fail between its start and the pipeline.
  const psql = startPsql(psqlTool, scratch, controller.signal);
  source.on('error', (error: unknown) => failures.record('verify', error));
  decrypt?.on('error', (error: unknown) => failures.record('decrypt', error));
  decompress.on('error', (error: unknown) => failures.record('decompress', error));
  psql.input.on('error', (error: unknown) => failures.record('load', error));

  events.stage('load', 'started', {detail: scratch.database});
  try {
    const flowing = pipeline([source, storedHash, ...(decrypt ? [decrypt] : []), decompress, plaintextHash, plaintextCount, psql.input], {signal: controller.signal});
    const settled = await Promise.allSettled([flowing, failures.watch('load', psql.completion)]);
    if (settled.some((outcome) => outcome.status === 'rejected')) {
      controller.abort();
      psql.kill();
      await psql.completion.catch(() => {});
      if (context.signal.aborted) throw cancelled();
      const culprit = failures.first ?? {stage: 'load', error: (settled.find((outcome) => outcome.status === 'rejected') as PromiseRejectedResult).reason};
      throw explainLoadFailure(culprit.stage as RestoreStage, culprit.error, metadata, context).with({details: {stage: culprit.stage}});
    }
  } catch (error) {
    events.stage('load', 'failed');
    throw error;
  } finally {
    context.signal.removeEventListener('abort', abortFromOutside);
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
  return plaintextCount.bytes;
}

/**
 * Restores a backup so that the target database holds exactly its content, or, on any failure or
 * cancellation, is left exactly as it was: the dump is loaded into a fresh database that replaces
 * the target by renaming only once everything succeeded. The old database is kept as
 * `<name>_pre_restore_<timestamp>` for the user to drop.
 */
export async function restoreBackup(context: RestoreContext, request: RestoreRequest): Promise<RestoreResult> {
  const now = context.now ?? (() => new Date());
  const startedAt = now();
  const {storage, events, settings} = context;

  const metadata = await loadMetadata(storage, request.name);
  const missingCodec = COMPRESSION_FORMATS[metadata.compression.algorithm].unavailable();
  if (missingCodec) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to restore '${metadata.backupName}': it is ${metadata.compression.algorithm}-compressed and ${missingCodec}`,
      suggestion: 'Run synapse-backup with the Node.js that `npm install` brings (npx synapse-backup).',
    });
  }
  const decryption = decryptionFor(context, metadata);
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
  // The full read and the key derivation each take a few hundred ms; they run while the client
  // tool is probed, the plan is confirmed and the scratch database is created, but the load waits
  // for both, so nothing is ever loaded from a damaged file or with a wrong key. A damaged file is
  // the more useful report, so it wins; either one wins over anything the setup ran into meanwhile.
  const checksFailed = new AbortController();
  const checks = Promise.allSettled([verifyStoredFile(context, metadata), checkKey()]).then(([verified, keyChecked]) => {
    if (verified.status === 'rejected') throw verified.reason;
    if (keyChecked.status === 'rejected') throw keyChecked.reason;
  });
  checks.catch(() => checksFailed.abort());
  const checkFailure = async (): Promise<unknown> => checks.then(() => undefined, (error: unknown) => error);

  const target = settings.database;
  const [probed, opened] = await Promise.allSettled([probeClientTool('psql', settings.pgBinDir), DatabaseAdmin.open(target)]);
  if (probed.status === 'rejected' || opened.status === 'rejected') {
    if (opened.status === 'fulfilled') await opened.value.close();
    throw (await checkFailure()) ?? (probed.status === 'rejected' ? probed.reason : (opened as PromiseRejectedResult).reason);
  }
  const psqlTool = probed.value;
  const admin = opened.value;
  let scratchName: string | undefined;
  let swapped = false;
  try {
    const existing: ExistingDatabase | undefined = await admin.inspect(target.database);
    const stamp = timestamp(startedAt);
    const plan: RestorePlan = {
      backupName: metadata.backupName,
      database: target.database,
      targetExists: existing !== undefined,
      previousDatabase: existing ? derivedDatabaseName(target.database, `pre_restore_${stamp}`) : undefined,
      metadata,
    };
    await request.confirm(plan, checksFailed.signal);
    if (context.signal.aborted) throw cancelled();

    events.stage('prepare', 'started');
    scratchName = derivedDatabaseName(target.database, `restoring_${stamp}`);
    if (await admin.exists(scratchName)) throw new SynapseError('E_RESTORE_FAILED', {message: `unable to restore: database '${scratchName}' already exists`, suggestion: 'Another restore is running, or one crashed: drop that database and try again.'});
    if (plan.previousDatabase && (await admin.exists(plan.previousDatabase))) {
      throw new SynapseError('E_RESTORE_FAILED', {message: `unable to restore: database '${plan.previousDatabase}' already exists`, suggestion: 'Wait a second and try again, or drop that database.'});
    }
    try {
      await admin.createEmpty(scratchName, existing);
    } catch (error) {
      if (isSynapseError(error) && error.code === 'E_DB_PRIVILEGE') {
        throw error.with({suggestion: `A restore loads into a new database first: grant the role CREATEDB (ALTER ROLE <role> CREATEDB) and make it the owner of '${target.database}'.`});
      }
      throw error;
    }
    events.stage('prepare', 'finished', {detail: scratchName});
    await checks;

    const plaintextBytes = await loadInto(context, metadata, psqlTool, target.withDatabase(scratchName), decryption);
    if (existing) await admin.copyDatabaseProperties(target.database, scratchName);

    if (context.signal.aborted) throw cancelled();
    events.stage('swap', 'started');
    await admin.swap(target.database, scratchName, plan.previousDatabase ?? '', existing);
    swapped = true;
    events.stage('swap', 'finished', {detail: plan.previousDatabase ? `previous database kept as '${plan.previousDatabase}'` : target.database});
    return {...plan, plaintextBytes, durationMs: now().getTime() - startedAt.getTime()};
  } catch (error) {
    for (const stage of ['prepare', 'load', 'swap'] as const) events.stage(stage, 'skipped', {detail: 'stopped'});
    const failedCheck = await checkFailure();
    if (failedCheck !== undefined) throw failedCheck;
    throw context.signal.aborted && !(isSynapseError(error) && error.code === 'E_CANCELLED') ? cancelled() : error;
  } finally {
    if (scratchName && !swapped) await admin.drop(scratchName).catch(() => {});
    await admin.close();
  }
}
