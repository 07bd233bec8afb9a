import {createGunzip, createGzip} from 'node:zlib';
import type {Transform} from 'node:stream';

import type {CompressionAlgorithm} from '../naming/index.js';

export interface CompressionSettings {
  readonly algorithm: CompressionAlgorithm;
  readonly level: number;
}

export const DEFAULT_COMPRESSION: CompressionSettings = {algorithm: 'gzip', level: 6};

// 64 KiB chunks instead of zlib's 16 KiB default: fewer round trips through the stream machinery.
const CHUNK_SIZE = 64 * 1024;

export function createCompressStream(settings: CompressionSettings): Transform {
  return createGzip({level: settings.level, chunkSize: CHUNK_SIZE});
}

export function createDecompressStream(_algorithm: CompressionAlgorithm): Transform {
  // Node's gunzip reads multi-member files (pigz-style) and, with the default finish flush,
  // rejects a stream that ends early: a truncated backup must fail, not restore half a dump.
  return createGunzip({chunkSize: CHUNK_SIZE});
}

/** The first bytes of every stream createCompressStream writes. */
export function compressedMagic(_algorithm: CompressionAlgorithm): Buffer {
  return Buffer.from([0x1f, 0x8b]);
}
