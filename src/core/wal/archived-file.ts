import {createHash} from 'node:crypto';
import {createReadStream} from 'node:fs';
import {open, type FileHandle} from 'node:fs/promises';
import {PassThrough, Readable, Writable, type Transform} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import type {BlockCompressor, BlockPool, CompressionSettings} from '../pipeline/index.js';
import {ByteCounter, Sha256Observer, SizeLimit, StreamChain, StreamChainFailure, blocksInFlight, createBlockCompressor, createCompressStream, createDecompressStream} from '../pipeline/index.js';
import {WAL_FILE_KDF_ITERATIONS, type WalKeys} from './wal-keys.js';
import type {WalObjectName} from './wal-file-names.js';

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

/**
 * A WAL file read once, in one pass: its size and SHA-256 (which name it in the archive, so they
 * are needed before an upload starts) and, for a file of at most `inMemoryLimit` bytes (a 16 MiB
 * segment), its content compressed. Each block is hashed and compressed while it is still in the
 * cache, and the file is compressed once however many locations take it. Nothing here needs the
 * key or the storage: a push reads and compresses its first files while the locations open and
 * the archive's key is derived (see sealWalFile for the encryption).
 */
export interface EncodedWalFile {
  readonly path: string;
  readonly digest: FileDigest;
  /** The compressed content, one frame or member per block; undefined for a larger file, which each upload encodes from disk. */
  readonly compressed: readonly Buffer[] | undefined;
}

/** An encoded file as every location stores it: compressed and, with a key, encrypted. */
export interface SealedWalFile {
  readonly path: string;
  readonly digest: FileDigest;
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
 * Reads, hashes and compresses one WAL file (see EncodedWalFile). Blocks are compressed on the
 * threadpool, a few at a time, while the next is read and hashed here; each block goes back to the
 * pool once its compression has finished with it.
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
      hash.update(block);
      bytes += block.length;
      if (!inMemory) {
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
    return {path: file, digest: {bytes, sha256: hash.digest('hex')}, compressed};
  } finally {
    // Every block back in the pool before the file's failure or result is reported.
    await Promise.allSettled(frames);
    ownCompressor?.close();
    await handle.close();
  }
}

/** Encrypts an encoded file's compressed content with the archive's key, where one is configured: the bytes every location stores. */
export async function sealWalFile(encoded: EncodedWalFile, codec: WalCodec): Promise<SealedWalFile> {
  const {path: file, digest, compressed} = encoded;
  if (!compressed) return {path: file, digest, encoded: undefined};
  const encrypt = await encryptStream(codec);
  if (!encrypt) return {path: file, digest, encoded: compressed};
  const sealed: Buffer[] = [];
  try {
    await pipeline(Readable.from(compressed, {objectMode: false}), encrypt, new Writable({write: (chunk: Buffer, _encoding, callback) => (sealed.push(chunk), callback())}));
  } catch (error) {
    throw new WalCodecFailure('encrypt', error);
  }
  return {path: file, digest, encoded: sealed};
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

async function encryptStream(codec: WalCodec): Promise<Transform | undefined> {
  if (!codec.encryption) return undefined;
  return codec.encryption.createEncryptStream(await codec.keys.encryptionPassphrase(), {iterations: WAL_FILE_KDF_ITERATIONS});
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
 * it, and says what it decoded to. Whether that is the file its name claims is the caller's to
 * decide with the tag: nothing here trusts the storage.
 */
export async function decodeArchivedFile(storage: StorageBackend, object: WalObjectName, codec: WalCodec, sink?: Writable, signal?: AbortSignal): Promise<FileDigest> {
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
  return {bytes: count.bytes, sha256: hash.digest};
}
