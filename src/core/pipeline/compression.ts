import {availableParallelism} from 'node:os';
import type {Transform} from 'node:stream';
import zlib from 'node:zlib';

import type {CompressionAlgorithm} from '../naming/index.js';
import type {BlockPool} from './block-pool.js';
import {ParallelBlockCompressor} from './parallel-block-compressor.js';
import {ReusableBlockCodec} from './reusable-block-codec.js';
import {ZstdMultiFrameDecompressor} from './zstd-frames.js';

export interface CompressionSettings {
  readonly algorithm: CompressionAlgorithm;
  readonly level: number;
}

interface CompressionFormat {
  readonly levels: {readonly min: number; readonly max: number; readonly default: number};
  /** The first bytes of every member the compressor writes. */
  readonly magic: Buffer;
  /** Why this Node cannot use the format, or undefined when it can. */
  readonly unavailable: () => string | undefined;
  /** Compresses blocks into independent members or frames, reusing contexts across blocks. */
  readonly blockCodec: (level: number) => {compress(block: Buffer): Promise<Buffer>; close(): void};
  /** Compresses one block into a member or frame of the same kind on the calling thread (a WAL encoding worker's own core). */
  readonly compressSync: (block: Buffer, level: number) => Buffer;
  readonly createDecompressStream: () => Transform;
}

// 64 KiB chunks instead of zlib's 16 KiB default: fewer round trips through the stream machinery.
const CHUNK_SIZE = 64 * 1024;
/**
 * Output buffer for compressing one block. Each time it fills, the job returns to the main thread
 * and resumes as a new threadpool job (with 64 KiB, zstd spent twice the CPU on a dump's text
 * tables); each one is also garbage once the block's result is assembled. 256 KiB holds most
 * compressed 1 MiB blocks in one piece.
 */
const BLOCK_OUTPUT_CHUNK = 256 * 1024;

// zstd arrived in Node 23.8 and 22.15; the project's own Node (24) has it, a system Node may not.
const HAS_ZSTD = typeof zlib.createZstdCompress === 'function';

export const COMPRESSION_FORMATS: Readonly<Record<CompressionAlgorithm, CompressionFormat>> = {
  gzip: {
    levels: {min: 1, max: 9, default: 6},
    magic: Buffer.from([0x1f, 0x8b]),
    unavailable: () => undefined,
    blockCodec: (level) =>
      new ReusableBlockCodec<zlib.Gzip & zlib.ZlibReset>({
        create: () => zlib.createGzip({level, chunkSize: BLOCK_OUTPUT_CHUNK}) as zlib.Gzip & zlib.ZlibReset,
        endFlag: zlib.constants.Z_FINISH,
        prepareNext: (engine) => engine.reset(),
      }),
    compressSync: (block, level) => zlib.gzipSync(block, {level, chunkSize: BLOCK_OUTPUT_CHUNK}),
    // Node's gunzip reads multi-member files and, with the default finish flush, rejects a stream
    // that ends early: a truncated backup must fail, not restore half a dump.
    createDecompressStream: () => zlib.createGunzip({chunkSize: CHUNK_SIZE}),
  },
  zstd: {
    // 20-22 are zstd's "ultra" levels, which need hundreds of MB of memory per block in flight.
    levels: {min: 1, max: 19, default: 3},
    magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
    unavailable: () => (HAS_ZSTD ? undefined : `Node.js ${process.versions.node} has no zstd (it needs 22.15, 23.8 or newer)`),
    blockCodec: (level) =>
      new ReusableBlockCodec({
        create: () =>
          zlib.createZstdCompress({
            chunkSize: BLOCK_OUTPUT_CHUNK,
            // A checksum per frame, as the zstd command line writes by default: `zstd -d` then catches damage on its own.
            // No content size in the frame header: it can only be pledged once per context, and decoders do not need it.
            params: {[zlib.constants.ZSTD_c_compressionLevel]: level, [zlib.constants.ZSTD_c_checksumFlag]: 1},
          }),
        endFlag: zlib.constants.ZSTD_e_end,
      }),
    compressSync: (block, level) =>
      zlib.zstdCompressSync(block, {
        chunkSize: BLOCK_OUTPUT_CHUNK,
        // Frames of the kind blockCodec writes (a checksum, no content size, which a one-shot
        // compression would record); their window fits the block, so the bytes may differ.
        params: {[zlib.constants.ZSTD_c_compressionLevel]: level, [zlib.constants.ZSTD_c_checksumFlag]: 1, [zlib.constants.ZSTD_c_contentSizeFlag]: 0},
      }),
    // Node's own zstd decoder stops after the first frame; ours has one frame per block.
    createDecompressStream: () => new ZstdMultiFrameDecompressor({chunkSize: CHUNK_SIZE}),
  },
};

export const DEFAULT_COMPRESSION: CompressionSettings = {algorithm: 'gzip', level: COMPRESSION_FORMATS.gzip.levels.default};

/**
 * 1 MiB blocks: compression ratio within 0.5% of one whole-stream member (deflate's window is 32 KiB,
 * zstd's at level 3 is 1-2 MiB), jobs long enough that thread hand-off costs little. Every stage
 * between pg_dump and the compressor may hold a block while the compressor is busy, so the block
 * size sets the memory in flight: 4 MiB blocks made peak RSS grow 40% from a 100 MB to a 1 GB
 * database, 1 MiB blocks keep it within 20%.
 */
export const BLOCK_SIZE = 1024 * 1024;

/** Compresses blocks into independent members or frames with contexts kept for the next block. */
export interface BlockCompressor {
  compress(block: Buffer): Promise<Buffer>;
  /** Frees the contexts; a block submitted after that is refused. */
  close(): void;
}

/**
 * A compressor whose contexts outlive one stream: `wal push` compresses dozens of 16 MiB files in a
 * run, and fresh contexts for each (a megabyte or more of external memory apiece) made V8 run a
 * full mark-compact every file or two.
 */
export function createBlockCompressor(settings: CompressionSettings): BlockCompressor {
  return COMPRESSION_FORMATS[settings.algorithm].blockCodec(settings.level);
}

/** One block compressed on the calling thread, into a member or frame of the kind createBlockCompressor makes of it. */
export function compressBlockSync(settings: CompressionSettings, block: Buffer): Buffer {
  return COMPRESSION_FORMATS[settings.algorithm].compressSync(block, settings.level);
}

export interface ParallelismOptions {
  /** Blocks compressed at once; defaults to the number of cores. */
  readonly threads?: number;
  /** Where input blocks go back once compressed, when they came from one. */
  readonly pool?: BlockPool;
  /** Contexts shared with other streams of the same settings, which the caller closes; else the stream's own. */
  readonly compressor?: BlockCompressor;
}

/** How many blocks the compressor keeps in flight: one per core, plus one finished and waiting for its turn. */
export function blocksInFlight(threads = availableParallelism()): number {
  return Math.max(1, threads) + 1;
}

export function createCompressStream(settings: CompressionSettings, options: ParallelismOptions = {}): Transform {
  const shared = options.compressor;
  const codec = shared ?? createBlockCompressor(settings);
  return new ParallelBlockCompressor({
    compressBlock: (block) => codec.compress(block),
    closeCodec: shared ? undefined : () => codec.close(),
    blockSize: BLOCK_SIZE,
    maxInFlight: blocksInFlight(options.threads),
    releaseInput: options.pool ? (chunk) => options.pool!.release(chunk) : undefined,
  });
}

export function createDecompressStream(algorithm: CompressionAlgorithm): Transform {
  return COMPRESSION_FORMATS[algorithm].createDecompressStream();
}

/** The first bytes of every stream createCompressStream writes. */
export function compressedMagic(algorithm: CompressionAlgorithm): Buffer {
  return COMPRESSION_FORMATS[algorithm].magic;
}
