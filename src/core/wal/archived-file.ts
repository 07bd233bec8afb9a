import {createHash, type Hash} from 'node:crypto';
import {createReadStream} from 'node:fs';
import {open, type FileHandle} from 'node:fs/promises';
import {PassThrough, Readable, Writable, type Transform} from 'node:stream';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import type {BlockCompressor, BlockPool, CompressionSettings} from '../pipeline/index.js';
import {ByteCounter, Sha256Observer, SizeLimit, StreamChain, StreamChainFailure, createCompressStream, createDecompressStream} from '../pipeline/index.js';
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
 * segment), its content compressed and encrypted as every location stores it. Each block is hashed
 * and compressed while it is still in the cache, and the file is compressed once however many
 * locations take it.
 */
export interface EncodedWalFile {
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
  /** Compression contexts shared with the other files of a run. */
  readonly compressor?: BlockCompressor;
  readonly signal?: AbortSignal;
  readonly inMemoryLimit?: number;
}

/** The file's blocks, each hashed as it is read, before anything else sees it. */
async function* hashedBlocks(handle: FileHandle, pool: BlockPool, hash: Hash, counted: {bytes: number}): AsyncGenerator<Buffer> {
  for (;;) {
    const block = pool.acquire();
    let bytesRead: number;
    try {
      ({bytesRead} = await handle.read(block, 0, block.length, null));
    } catch (error) {
      pool.release(block);
      throw error;
    }
    if (bytesRead === 0) {
      pool.release(block);
      return;
    }
    const chunk = block.subarray(0, bytesRead);
    hash.update(chunk);
    counted.bytes += bytesRead;
    yield chunk;
  }
}

export async function encodeWalFile(file: string, codec: WalCodec, options: EncodeOptions): Promise<EncodedWalFile> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw new WalCodecFailure('read', error);
  }
  const hash = createHash('sha256');
  const counted = {bytes: 0};
  try {
    if ((await handle.stat()).size > (options.inMemoryLimit ?? IN_MEMORY_WAL_FILE_BYTES)) {
      // Too large to hold: hashed now, encoded by each upload from the disk.
      try {
        for await (const block of hashedBlocks(handle, options.pool, hash, counted)) options.pool.release(block);
      } catch (error) {
        throw new WalCodecFailure('read', error);
      }
      return {path: file, digest: {bytes: counted.bytes, sha256: hash.digest('hex')}, encoded: undefined};
    }
    const encoded: Buffer[] = [];
    const encrypt = await encryptStream(codec);
    try {
      await new StreamChain(options.signal).run([
        {stage: 'dump', stream: Readable.from(hashedBlocks(handle, options.pool, hash, counted), {objectMode: false})},
        {stage: 'compress', stream: createCompressStream(codec.compression, {compressor: options.compressor, pool: options.pool})},
        ...(encrypt ? [{stage: 'encrypt' as const, stream: encrypt}] : []),
        {stage: 'compress', stream: new Writable({write: (chunk: Buffer, _encoding, callback) => (encoded.push(chunk), callback())})},
      ]);
    } catch (error) {
      if (!(error instanceof StreamChainFailure)) throw error;
      throw new WalCodecFailure(error.stage === 'dump' ? 'read' : (error.stage as 'compress' | 'encrypt'), error.error);
    }
    return {path: file, digest: {bytes: counted.bytes, sha256: hash.digest('hex')}, encoded};
  } finally {
    await handle.close();
  }
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
export async function storeWalFile(storage: StorageBackend, key: string, source: EncodedWalFile, codec: WalCodec, options: {signal?: AbortSignal; compressor?: BlockCompressor} = {}): Promise<ObjectInfo> {
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
