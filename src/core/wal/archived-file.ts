import {createHash} from 'node:crypto';
import {createReadStream} from 'node:fs';
import path from 'node:path';
import {open, type FileHandle} from 'node:fs/promises';
import {PassThrough, Readable, Writable, type Transform} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import type {BlockCompressor, BlockPool, CompressionSettings} from '../pipeline/index.js';
import {ByteCounter, DigestObserver, Sha256Observer, SizeLimit, StreamChain, StreamChainFailure, blocksInFlight, createBlockCompressor, createCompressStream, createDecompressStream} from '../pipeline/index.js';
import {WAL_FILE_KDF_ITERATIONS, type WalKeys} from './wal-keys.js';
import type {WalObjectName, WalTag} from './wal-file-names.js';

/** What encoding and decoding archived files needs: the compression of new ones, the cipher and the archive's keys. */
export interface WalCodec {
  readonly compression: CompressionSettings;
  /** Present exactly when a key is configured. */
  readonly encryption: EncryptionProvider | undefined;
  readonly keys: WalKeys;
}

/**
 * PostgreSQL's largest WAL segment is 1 GiB (initdb --wal-segsize); no archived file decodes to
 * more, so a file that does (a decompression bomb planted in the archive) stops there instead of
 * filling pg_wal.
 */
export const MAX_WAL_FILE_BYTES = 1024 * 1024 * 1024;

export interface FileDigest {
  readonly bytes: number;
  readonly sha256: string;
}

/** What reading an archived file back showed: the WAL file's size and SHA-256, and the format-2 tag of the bytes read, where its tag is of that format. */
export interface DecodedDigest extends FileDigest {
  readonly storedTag?: string;
}

/**
 * A WAL file read once, in one pass: its size and, for a file of at most `inMemoryLimit` bytes (a
 * 16 MiB segment), its content compressed, which is then tagged by what is stored (format 2, see
 * sealWalFile); a larger one, which each upload encodes from disk again, is tagged by its SHA-256
 * (format 1), needed before an upload starts and so taken here. Each block is compressed while it
 * is still in the cache, and the file is compressed once however many locations take it. Nothing
 * here needs the key or the storage: a push reads and compresses its first files while the
 * locations open and the archive's key is derived.
 */
export type EncodedWalFile =
  | {readonly path: string; readonly bytes: number; /** One frame or member per block. */ readonly compressed: readonly Buffer[]}
  | {readonly path: string; readonly bytes: number; readonly sha256: string; readonly compressed?: undefined};

/** An encoded file as every location stores it, compressed and, with a key, encrypted, and its tag. */
export interface SealedWalFile {
  readonly path: string;
  /** The WAL file's size. */
  readonly bytes: number;
  readonly tag: WalTag;
  /** The stored form, in pieces; undefined for a larger file, which each upload encodes from disk. */
  readonly encoded: readonly Buffer[] | undefined;
}

/** Files up to this size are held in memory, compressed and encrypted, between reading and uploading: WAL_PUSH_PARALLEL of them at most. */
export const IN_MEMORY_WAL_FILE_BYTES = 64 * 1024 * 1024;

export interface EncodeOptions {
  /** The blocks the file is read into, lent back once compressed. */
  readonly pool: BlockPool;
  /** Compression contexts shared with the other files of a run; else the file's own. */
  readonly compressor?: BlockCompressor;
  readonly signal?: AbortSignal;
  readonly inMemoryLimit?: number;
}

async function readBlock(handle: FileHandle, pool: BlockPool): Promise<Buffer | undefined> {
  const block = pool.acquire();
  try {
    const {bytesRead} = await handle.read(block, 0, block.length, null);
    if (bytesRead > 0) return block.subarray(0, bytesRead);
  } catch (error) {
    pool.release(block);
    throw new WalCodecFailure('read', error);
  }
  pool.release(block);
  return undefined;
}

function cancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new WalCodecFailure('read', signal.reason ?? new Error('cancelled'));
}

/**
 * Reads and compresses one WAL file, or hashes one too large to hold (see EncodedWalFile). Blocks
 * are compressed on the threadpool, a few at a time, while the next is read here; each block goes
 * back to the pool once its compression has finished with it.
 */
export async function encodeWalFile(file: string, compression: CompressionSettings, options: EncodeOptions): Promise<EncodedWalFile> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw new WalCodecFailure('read', error);
  }
  const hash = createHash('sha256');
  let bytes = 0;
  const {pool, signal} = options;
  const ownCompressor = options.compressor ? undefined : createBlockCompressor(compression);
  const compressor = options.compressor ?? ownCompressor!;
  const frames: Array<Promise<Buffer>> = [];
  try {
    let size: number;
    try {
      size = (await handle.stat()).size;
    } catch (error) {
      throw new WalCodecFailure('read', error);
    }
    const inMemory = size <= (options.inMemoryLimit ?? IN_MEMORY_WAL_FILE_BYTES);
    const inFlight = blocksInFlight();
    for (;;) {
      cancelled(signal);
      const block = await readBlock(handle, pool);
      if (!block) break;
      bytes += block.length;
      if (!inMemory) {
        hash.update(block);
        // Too large to hold: hashed now, encoded by each upload from the disk.
        pool.release(block);
        continue;
      }
      const frame = compressor.compress(block).then(
        (compressed) => (pool.release(block), compressed),
        (error: unknown) => {
          pool.release(block);
          throw new WalCodecFailure('compress', error);
        },
      );
      // Rejections are taken in order below; this keeps an early one from counting as unhandled.
      frame.catch(() => {});
      frames.push(frame);
      if (frames.length >= inFlight) await frames[frames.length - inFlight]!;
    }
    // An empty file still becomes one frame: zero bytes are not a valid .gz or .zst file.
    if (inMemory && frames.length === 0) frames.push(compressor.compress(Buffer.alloc(0)).catch((error: unknown) => Promise.reject(new WalCodecFailure('compress', error))));
    const compressed = inMemory ? await Promise.all(frames) : undefined;
    cancelled(signal);
    return compressed ? {path: file, bytes, compressed} : {path: file, bytes, sha256: hash.digest('hex')};
  } finally {
    // Every block back in the pool before the file's failure or result is reported.
    await Promise.allSettled(frames);
    ownCompressor?.close();
    await handle.close();
  }
}

/**
 * Makes an encoded file what every location stores, and names it: a file held in memory is
 * encrypted (where a key is configured) with the salt its content gives (WalKeys.encryptionSalt)
 * and tagged by the bytes stored (format 2), a larger one by its SHA-256 (format 1).
 */
export async function sealWalFile(encoded: EncodedWalFile, codec: WalCodec): Promise<SealedWalFile> {
  const {path: file, bytes} = encoded;
  const name = path.basename(file);
  if (!encoded.compressed) return {path: file, bytes, tag: {format: 1, hex: await codec.keys.plaintextTag(name, bytes, encoded.sha256)}, encoded: undefined};
  let sealed: readonly Buffer[] = encoded.compressed;
  const encrypt = await encryptStream(codec, codec.encryption ? await codec.keys.encryptionSalt(name, encoded.compressed) : undefined);
  if (encrypt) {
    const pieces: Buffer[] = [];
    try {
      await pipeline(Readable.from(encoded.compressed, {objectMode: false}), encrypt, new Writable({write: (chunk: Buffer, _encoding, callback) => (pieces.push(chunk), callback())}));
    } catch (error) {
      throw new WalCodecFailure('encrypt', error);
    }
    sealed = pieces;
  }
  const tag = await codec.keys.storedTagHash(name);
  for (const piece of sealed) tag.update(piece);
  return {path: file, bytes, tag: {format: 2, hex: tag.digest('hex')}, encoded: sealed};
}

/** The failure of one step of reading or writing an archived file, by the step. */
export class WalCodecFailure extends Error {
  constructor(
    readonly step: 'read' | 'store' | 'decrypt' | 'decompress' | 'write' | 'compress' | 'encrypt',
    readonly error: unknown,
  ) {
    super((error as Error)?.message ?? String(error));
    this.name = 'WalCodecFailure';
  }
}

async function encryptStream(codec: WalCodec, salt?: Buffer): Promise<Transform | undefined> {
  if (!codec.encryption) return undefined;
  return codec.encryption.createEncryptStream(await codec.keys.encryptionPassphrase(), {iterations: WAL_FILE_KDF_ITERATIONS, ...(salt ? {salt} : {})});
}

async function decryptStream(codec: WalCodec): Promise<Transform> {
  const provider = codec.encryption!;
  return provider.createDecryptStream(await codec.keys.encryptionPassphrase(), provider.describe({iterations: WAL_FILE_KDF_ITERATIONS}));
}

/**
 * Stores a WAL file under `key`, never replacing an object there (`ifNotExists`): resolves once the
 * storage has it durably, as put() promises. An encoded file is sent as it is; a larger one is
 * compressed and encrypted from the disk again (`compressor`, where given, is one of the codec's
 * settings that the caller shares between files).
 */
export async function storeWalFile(storage: StorageBackend, key: string, source: SealedWalFile, codec: WalCodec, options: {signal?: AbortSignal; compressor?: BlockCompressor} = {}): Promise<ObjectInfo> {
  const {signal} = options;
  const putOptions = {ifNotExists: true, private: true, immutable: true} as const;
  if (source.encoded) {
    try {
      return await storage.put(key, Readable.from(source.encoded, {objectMode: false}), {...putOptions, signal});
    } catch (error) {
      throw new WalCodecFailure('store', error);
    }
  }
  const encrypt = await encryptStream(codec);
  const chain = new StreamChain(signal);
  const body = new PassThrough();
  const stored = storage.put(key, body, {...putOptions, signal: chain.signal});
  try {
    const [object] = (await chain.run(
      [
        {stage: 'dump', stream: createReadStream(source.path, {highWaterMark: 1024 * 1024})},
        {stage: 'compress', stream: createCompressStream(codec.compression, {compressor: options.compressor})},
        ...(encrypt ? [{stage: 'encrypt' as const, stream: encrypt}] : []),
        {stage: 'store', stream: body},
      ],
      [{stage: 'store', promise: stored}],
    )) as [ObjectInfo];
    return object;
  } catch (error) {
    if (!(error instanceof StreamChainFailure)) throw error;
    const step = error.stage === 'dump' ? 'read' : (error.stage as 'compress' | 'encrypt' | 'store');
    throw new WalCodecFailure(step, error.error);
  }
}

/**
 * Reads an archived file back into `sink` (or nowhere, to check it), decrypting and decompressing
 * it, and says what it decoded to and, for a format-2 tag, what the bytes read make. Whether that
 * is the file its name claims is the caller's to decide with the tag: nothing here trusts the
 * storage.
 */
export async function decodeArchivedFile(storage: StorageBackend, object: WalObjectName, codec: WalCodec, sink?: Writable, signal?: AbortSignal): Promise<DecodedDigest> {
  const stored = object.tag.format === 2 ? new DigestObserver(await codec.keys.storedTagHash(object.file.name)) : undefined;
  const hash = new Sha256Observer();
  const count = new ByteCounter();
  const chain = new StreamChain(signal);
  let source;
  try {
    source = await storage.get(object.key, {signal: chain.signal});
  } catch (error) {
    throw new WalCodecFailure('read', error);
  }
  try {
    await chain.run([
      {stage: 'verify', stream: source},
      ...(stored ? [{stage: 'verify' as const, stream: stored}] : []),
      ...(object.encrypted ? [{stage: 'decrypt' as const, stream: await decryptStream(codec)}] : []),
      {stage: 'decompress', stream: createDecompressStream(object.compression)},
      {stage: 'decompress', stream: new SizeLimit(MAX_WAL_FILE_BYTES, 'it decodes to more than %d bytes, more than any WAL file')},
      {stage: 'checksum', stream: count},
      {stage: 'checksum', stream: hash},
      {stage: 'load', stream: sink ?? new Writable({write: (_chunk, _encoding, callback) => callback()})},
    ]);
  } catch (error) {
    if (!(error instanceof StreamChainFailure)) throw error;
    const step = error.stage === 'verify' ? 'read' : error.stage === 'load' ? 'write' : error.stage === 'checksum' ? 'decompress' : (error.stage as 'decrypt' | 'decompress');
    throw new WalCodecFailure(step, error.error);
  }
  return {bytes: count.bytes, sha256: hash.digest, ...(stored ? {storedTag: stored.digest} : {})};
}
