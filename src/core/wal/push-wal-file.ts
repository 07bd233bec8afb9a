import {createReadStream} from 'node:fs';
import path from 'node:path';
import {Writable} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import type {WalAcknowledgement} from '../config/index.js';
import {SynapseError, errnoCode, isSynapseError} from '../errors/index.js';
import type {Location} from '../replication/index.js';
import {storageError} from '../storage/index.js';
import {claimArchive} from './archive-identity.js';
import {ByteCounter, Sha256Observer, type BlockCompressor, type BlockPool, type CompressionSettings} from '../pipeline/index.js';
import {encodeWalFile, sealWalFile, storeWalFile, WalCodecFailure, type EncodedWalFile, type FileDigest, type SealedWalFile, type WalCodec} from './archived-file.js';
import type {WalEncodingWorkers} from './wal-encoding-workers.js';
import {archivedCopiesOf, judgeArchivedCopy} from './archived-copies.js';
import {parseWalFileName, walObjectKey, type WalFileName} from './wal-file-names.js';

export interface WalArchiveContext {
  /** Every configured location, the primary first. */
  readonly locations: readonly Location[];
  readonly codec: WalCodec;
  readonly signal: AbortSignal;
  readonly onWarning: (message: string) => void;
  readonly now?: () => Date;
  /** Each location's archive claimed once per run, however many files it pushes. */
  readonly claims?: Map<string, Promise<void>>;
  /** Compression contexts of the codec's settings, shared by the files of a run; closed by whoever made the context. */
  readonly compressor?: BlockCompressor;
  /**
   * When a push succeeds: once every location holds the file (`all`, the default), or once the
   * first one does (`primary`), the others' failures then reported as warnings.
   */
  readonly acknowledge?: WalAcknowledgement;
  /** With `primary`: the other locations that could not be opened, and why; each file's result names them as failed. */
  readonly unopened?: ReadonlyArray<{readonly location: string; readonly error: string}>;
}

/**
 * What a push needs: how files are read and compressed, at once, and the archive (the locations,
 * the codec, the key), which may still be opening. A push reads and compresses its first files
 * while plugins load, locations open and the archive's key is derived, instead of after.
 */
export interface WalPushContext {
  readonly compression: CompressionSettings;
  /** The blocks files are read into, lent round the files of a run. */
  readonly blocks: BlockPool;
  /** Compression contexts of these settings, shared by the files of a run; closed by whoever made the context. */
  readonly compressor: BlockCompressor;
  readonly signal: AbortSignal;
  readonly onWarning: (message: string) => void;
  /** The archive to store into; a rejection fails every file with its error. */
  readonly archive: Promise<WalArchiveContext>;
  /** Worker threads that read and compress files, for a backlog; else the files are encoded here. */
  readonly encoders?: WalEncodingWorkers;
}

export interface PushRequest {
  /** The file as PostgreSQL passes it (%p): its name is the WAL file's. */
  readonly path: string;
  /** The system identifier of the cluster that wrote it. */
  readonly systemIdentifier: string;
}

/**
 * What each location did with the file: stored it now, held it already, or replaced a damaged copy
 * of ours; or, for a location after the primary where WAL_ARCHIVE_ACKNOWLEDGE=primary, failed to.
 */
export type PushOutcome = 'stored' | 'present' | 'replaced' | 'failed';

export interface PushResult {
  readonly file: string;
  readonly kind: WalFileName['kind'];
  /** The key this push stores the file under (which holds its tag); a location that holds the same file under another tag already keeps that one. */
  readonly key: string;
  readonly bytes: number;
  readonly locations: ReadonlyArray<{readonly location: string; readonly outcome: PushOutcome; readonly storedBytes?: number; readonly error?: string}>;
}

/** The WAL file named by a path, or a usage error: nothing but PostgreSQL's own names is archived. */
export function walFileOf(filePath: string, action: string): WalFileName {
  const file = parseWalFileName(path.basename(filePath));
  if (!file) {
    throw new SynapseError('E_USAGE', {
      message: `unable to ${action} '${filePath}': '${path.basename(filePath)}' is not the name of a WAL segment, timeline history, .partial or .backup file`,
      suggestion: "Use the command as PostgreSQL's archive_command ('... wal push %p') or restore_command ('... wal fetch %f %p'), which pass WAL file names.",
    });
  }
  return file;
}

function conflict(file: string, where: string, existing: string, digest: FileDigest): SynapseError {
  return new SynapseError('E_WAL_CONFLICT', {
    message: `unable to archive '${file}' at ${where}: the archive holds an authentic '${file}' of other content (${existing}), and this one (${digest.bytes} bytes, sha256 ${digest.sha256}) would not replace it`,
    details: {file, existing},
  });
}

/**
 * Archives one WAL file into the WAL area of every location and resolves only once each holds it
 * durably: PostgreSQL recycles a segment once its archive_command says 0, so a success here must
 * mean the file is safe. A file archived already with the same content succeeds without writing
 * (PostgreSQL pushes a file again after a crash); one archived with other content fails loudly
 * and is left alone (two clusters writing to one place, a promotion without a new timeline).
 */
export async function pushWalFile(push: WalPushContext, request: PushRequest): Promise<PushResult> {
  return archivePreparedFile(push, request, await prepareWalFile(push, request));
}

/** A WAL file read, compressed and encrypted: what every location stores. */
interface PreparedWalFile {
  readonly file: WalFileName;
  readonly loaded: SealedWalFile;
  /**
   * The file's size and SHA-256, read again from pg_wal once, and only where a location holds
   * another copy of its name: whether that copy is the same file (pushed before, with another salt
   * or by another version) or a conflict.
   */
  readonly plaintext: () => Promise<FileDigest>;
}

/** Reads a WAL file to say its size and SHA-256. */
async function plaintextDigestOf(file: string, signal: AbortSignal): Promise<FileDigest> {
  const hash = new Sha256Observer();
  const count = new ByteCounter();
  try {
    await pipeline(createReadStream(file, {highWaterMark: 1024 * 1024}), count, hash, new Writable({write: (_chunk, _encoding, callback) => callback()}), {signal});
  } catch (error) {
    throw new SynapseError('E_USAGE', {message: `unable to archive '${file}': reading it to compare it with the archived copy failed: ${(error as Error)?.message ?? String(error)}`, cause: error});
  }
  return {bytes: count.bytes, sha256: hash.digest};
}

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => (made ??= make());
}

/** The CPU's part of a push: reads, compresses, encrypts and tags the file, once for every location. */
async function prepareWalFile(push: WalPushContext, request: PushRequest): Promise<PreparedWalFile> {
  const file = walFileOf(request.path, 'archive');
  try {
    const here = (): Promise<EncodedWalFile> => encodeWalFile(request.path, push.compression, {pool: push.blocks, compressor: push.compressor, signal: push.signal});
    const encoded = await (push.encoders ? push.encoders.encode(request.path, here, {signal: push.signal}) : here());
    return {file, loaded: await sealWalFile(encoded, (await push.archive).codec), plaintext: once(() => plaintextDigestOf(request.path, push.signal))};
  } catch (error) {
    if (push.signal.aborted) throw new SynapseError('E_CANCELLED', {message: `unable to archive '${request.path}': cancelled`, cause: error});
    if (!(error instanceof WalCodecFailure)) throw error;
    const cause = error.error;
    if (error.step === 'read') throw new SynapseError('E_USAGE', {message: `unable to archive '${request.path}': ${(cause as Error)?.message ?? String(cause)}`, cause});
    throw new SynapseError('E_INTERNAL', {message: `unable to archive '${request.path}': it could not be ${error.step === 'encrypt' ? 'encrypted' : 'compressed'}: ${(cause as Error)?.message ?? String(cause)}`, cause});
  }
}

/** The storage's part: stores a prepared file at every location and resolves once each holds it durably (see pushWalFile). */
async function archivePreparedFile(push: WalPushContext, request: PushRequest, prepared: PreparedWalFile): Promise<PushResult> {
  const context = await push.archive;
  const {file, loaded} = prepared;
  const key = walObjectKey(file.name, loaded.tag, context.codec.compression.algorithm, context.codec.encryption !== undefined);
  const settled = await Promise.allSettled(context.locations.map((location) => archiveAt(context, location, request, key, prepared)));
  const failures = settled.flatMap((outcome, index) => (outcome.status === 'rejected' ? [{location: context.locations[index]!.name, index, error: outcome.reason as unknown}] : []));
  // Where the primary alone acknowledges, another location's failure is left for backup sync to
  // mend, said, and counted by status; but never a conflict: other content under an archived name
  // means two clusters (or a promotion without a new timeline) write to one place.
  const tolerated = (failure: (typeof failures)[number]): boolean =>
    context.acknowledge === 'primary' && failure.index > 0 && !(isSynapseError(failure.error) && failure.error.code === 'E_WAL_CONFLICT') && !context.signal.aborted;
  const fatal = failures.filter((failure) => !tolerated(failure));
  if (fatal.length > 0) {
    const named = context.locations.length > 1;
    const first = fatal[0]!;
    const error = isSynapseError(first.error) ? first.error : new SynapseError('E_INTERNAL', {message: String((first.error as Error)?.message ?? first.error), cause: first.error});
    const others = failures.filter((failure) => failure !== first).map((failure) => `'${failure.location}': ${(failure.error as Error).message}`);
    throw error.with({
      message: `${named ? `location '${first.location}': ` : ''}${error.message}${others.length > 0 ? `; also ${others.join('; ')}` : ''}`,
      details: {file: file.name, failedLocations: failures.map((failure) => failure.location)},
    });
  }
  for (const failure of failures) {
    context.onWarning(`'${file.name}' is archived at the primary location but not at '${failure.location}' (WAL_ARCHIVE_ACKNOWLEDGE=primary; \`synapse-backup backup sync\` copies it there): ${(failure.error as Error).message}`);
  }
  return {
    file: file.name,
    kind: file.kind,
    key,
    bytes: loaded.bytes,
    locations: settled.map((outcome, index) => ({
      location: context.locations[index]!.name,
      ...(outcome.status === 'fulfilled' ? outcome.value : {outcome: 'failed' as const, error: (outcome.reason as Error).message}),
    })).concat((context.unopened ?? []).map(({location, error}) => ({location, outcome: 'failed' as const, error}))),
  };
}

async function archiveAt(context: WalArchiveContext, location: Location, request: PushRequest, key: string, {file, loaded, plaintext}: PreparedWalFile): Promise<{outcome: PushOutcome; storedBytes?: number}> {
  const {storage} = location;
  const {codec, signal} = context;
  const claim = (): Promise<void> => claimArchive(storage, request.systemIdentifier, codec.keys, (context.now ?? (() => new Date()))());
  const claimKey = `${location.name}\0${request.systemIdentifier}`;
  let claimed = context.claims?.get(claimKey);
  if (!claimed) {
    claimed = claim();
    context.claims?.set(claimKey, claimed);
    // A failed claim is tried again by the next file, not remembered.
    claimed.catch(() => context.claims?.delete(claimKey));
  }
  await claimed;
  let copies;
  try {
    copies = await archivedCopiesOf(storage, file.name);
  } catch (error) {
    throw storageError(error, storage, 'list the archived copies of', file.name);
  }
  // Another authentic copy under this name is this file stored before under another tag (by an
  // earlier version, in format 1; by another zstd, or where a salt was not honoured) or, of other
  // content, a conflict; anything else under it is no copy at all (damaged, planted) and is
  // reported, never deleted: it is not ours to judge away.
  const ours = copies.find((copy) => copy.key === key);
  let sameFile: string | undefined;
  for (const other of copies.filter((copy) => copy.key !== key)) {
    const judged = await judgeArchivedCopy(storage, other, codec, undefined, signal);
    if (judged.verdict !== 'good') {
      context.onWarning(`'${other.key}' at ${storage.location} claims to be '${file.name}' but is not used: ${judged.reason}`);
      continue;
    }
    const local = await plaintext();
    if (judged.digest.bytes !== local.bytes || judged.digest.sha256 !== local.sha256) throw conflict(file.name, storage.location, other.key, local);
    sameFile ??= other.key;
  }
  if (sameFile !== undefined && !ours) return {outcome: 'present'};
  let replacing = false;
  if (ours) {
    const judged = await judgeArchivedCopy(storage, ours, codec, undefined, signal);
    if (judged.verdict === 'good') return {outcome: 'present'};
    // A copy the storage cannot read now may be good: never removed for that.
    if (judged.verdict === 'unreadable') throw new SynapseError('E_STORAGE', {message: `unable to archive '${file.name}' at ${storage.location}: its archived copy '${key}' is there but ${judged.reason}`});
    // Our name with other content: a copy of ours cut short or damaged since; the name says what belongs there.
    context.onWarning(`'${key}' at ${storage.location} is there but ${judged.reason}; replacing it with the file PostgreSQL still has`);
    try {
      await storage.delete(key);
    } catch (error) {
      throw storageError(error, storage, 'remove the damaged archived copy', key);
    }
    replacing = true;
  }
  try {
    const object = await storeWalFile(storage, key, loaded, codec, {signal, compressor: context.compressor});
    return {outcome: replacing ? 'replaced' : 'stored', storedBytes: object.size};
  } catch (error) {
    const cause = error instanceof WalCodecFailure ? error.error : error;
    if (errnoCode(cause) === 'EEXIST') {
      // A push of the same file at the same time (PostgreSQL's retry beside a push still running) got there first.
      const copy = (await archivedCopiesOf(storage, file.name)).find((candidate) => candidate.key === key);
      if (copy && (await judgeArchivedCopy(storage, copy, codec, undefined, signal)).verdict === 'good') return {outcome: 'present'};
    }
    if (error instanceof WalCodecFailure && error.step === 'read') {
      throw new SynapseError('E_USAGE', {message: `unable to archive '${request.path}': reading it failed: ${error.message}`, cause});
    }
    throw storageError(cause, storage, 'archive', file.name);
  }
}

/**
 * Archives several files, `parallel` at a time, in the order given; each settles on its own (one
 * that fails does not stop the others) and is reported to `onSettled` as soon as it has.
 *
 * Preparing a file (reading, compressing, encrypting) is the CPU's work, storing it (writing,
 * fsync, rename; an upload) the storage's: a lane that has prepared a file hands it to the storage
 * and goes on to the next, with at most `parallel` files being stored at once. When each lane
 * stored its file before preparing the next, the lanes fell into step and the cores idled through
 * every round of fsyncs.
 */
export async function pushWalFiles(
  context: WalPushContext,
  requests: readonly PushRequest[],
  parallel: number,
  onSettled: (request: PushRequest, outcome: PromiseSettledResult<PushResult>) => Promise<void> = async () => {},
): Promise<Array<PromiseSettledResult<PushResult>>> {
  const outcomes: Array<PromiseSettledResult<PushResult>> = Array.from({length: requests.length});
  const lanes = Math.max(1, Math.min(parallel, requests.length));
  const settle = async (index: number, outcome: PromiseSettledResult<PushResult>): Promise<void> => {
    outcomes[index] = outcome;
    await onSettled(requests[index]!, outcome);
  };
  const storing = new Set<Promise<void>>();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < requests.length && !context.signal.aborted) {
      const index = next++;
      const request = requests[index]!;
      let prepared: PreparedWalFile;
      try {
        prepared = await prepareWalFile(context, request);
      } catch (reason) {
        await settle(index, {status: 'rejected', reason});
        continue;
      }
      // No more than `parallel` files are stored at once: a lane with a prepared file waits for room
      // (so at most twice `parallel` prepared files are held in memory).
      while (storing.size >= lanes) await Promise.race(storing);
      const stored = archivePreparedFile(context, request, prepared).then(
        (value) => settle(index, {status: 'fulfilled', value}),
        (reason: unknown) => settle(index, {status: 'rejected', reason}),
      );
      storing.add(stored);
      stored.finally(() => storing.delete(stored)).catch(() => {});
    }
  };
  await Promise.all(Array.from({length: lanes}, () => lane()));
  await Promise.all(storing);
  return outcomes.map((outcome) => outcome ?? {status: 'rejected', reason: new SynapseError('E_CANCELLED', {message: 'unable to archive: cancelled before it started'})});
}
