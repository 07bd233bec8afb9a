import {createHash} from 'node:crypto';
import {createReadStream} from 'node:fs';
import {open} from 'node:fs/promises';
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
 * A WAL file read once: its size and SHA-256 (which name it in the archive, so they are needed
 * before the upload starts) and, for a file of at most `inMemoryLimit` bytes (a 16 MiB segment),
 * its content in pooled blocks, which every location's upload then reads instead of the disk.
 */
export interface LoadedWalFile {
  readonly path: string;
  readonly digest: FileDigest;
  /** Undefined for a larger file: each upload reads it from disk again. */
  readonly blocks: readonly Buffer[] | undefined;
}

/** Files up to this size are held in memory between hashing and uploading: WAL_PUSH_PARALLEL of them at most. */
export const IN_MEMORY_WAL_FILE_BYTES = 64 * 1024 * 1024;

export async function loadWalFile(file: string, pool: BlockPool, inMemoryLimit = IN_MEMORY_WAL_FILE_BYTES): Promise<LoadedWalFile> {
  const handle = await open(file, 'r');
  const blocks: Buffer[] = [];
  let scratch: Buffer | undefined;
  try {
    const keep = (await handle.stat()).size <= inMemoryLimit;
    const hash = createHash('sha256');
    let bytes = 0;
    for (;;) {
      const block = keep ? pool.acquire() : (scratch ??= pool.acquire());
      let filled = 0;
      while (filled < block.length) {
        const {bytesRead} = await handle.read(block, filled, block.length - filled, null);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) {
        if (keep) pool.release(block);
        break;
      }
      hash.update(block.subarray(0, filled));
      bytes += filled;
      if (keep) blocks.push(block.subarray(0, filled));
      if (filled < block.length) break;
    }
    return {path: file, digest: {bytes, sha256: hash.digest('hex')}, blocks: keep ? blocks : undefined};
  } catch (error) {
    for (const block of blocks) pool.release(block);
    throw error;
  } finally {
    if (scratch) pool.release(scratch);
    await handle.close();
  }
}

/** Gives a loaded file's blocks back to the pool, once no upload reads them any more. */
export function releaseWalFile(file: LoadedWalFile, pool: BlockPool): void {
  for (const block of file.blocks ?? []) pool.release(block);
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
 * Compresses and encrypts a local WAL file into the storage under `key`, never replacing an object
 * there (`ifNotExists`): resolves once the storage has it durably, as put() promises. `compressor`,
 * where given, is one of the codec's compression settings that the caller shares between files.
 */
export async function storeWalFile(storage: StorageBackend, key: string, source: LoadedWalFile, codec: WalCodec, options: {signal?: AbortSignal; compressor?: BlockCompressor} = {}): Promise<ObjectInfo> {
  const {signal} = options;
  const encrypt = await encryptStream(codec);
  const chain = new StreamChain(signal);
  const body = new PassThrough();
  const stored = storage.put(key, body, {ifNotExists: true, private: true, immutable: true, signal: chain.signal});
  try {
    const [object] = (await chain.run(
      [
        {stage: 'dump', stream: source.blocks ? Readable.from(source.blocks, {objectMode: false}) : createReadStream(source.path, {highWaterMark: 1024 * 1024})},
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
