import {open} from 'node:fs/promises';
import zlib from 'node:zlib';

export interface LevelResult {
  readonly algorithm: 'gzip' | 'zstd';
  readonly level: number;
  /** Plain bytes compressed per CPU-second of one core. */
  readonly megabytesPerCoreSecond: number;
  /** Plain bytes over compressed bytes. */
  readonly ratio: number;
}

const BLOCK = 1024 * 1024;

/** Evenly spaced 1 MiB blocks of the dump, the unit our compressor works in. */
async function sampleBlocks(file: string, count: number): Promise<Buffer[]> {
  const handle = await open(file, 'r');
  try {
    const {size} = await handle.stat();
    const blocks: Buffer[] = [];
    const step = Math.max(BLOCK, Math.floor(size / count));
    for (let offset = 0; offset < size && blocks.length < count; offset += step) {
      const block = Buffer.alloc(Math.min(BLOCK, size - offset));
      await handle.read(block, 0, block.length, offset);
      blocks.push(block);
    }
    return blocks;
  } finally {
    await handle.close();
  }
}

function compressor(algorithm: 'gzip' | 'zstd', level: number): (block: Buffer) => Buffer {
  if (algorithm === 'gzip') return (block) => zlib.gzipSync(block, {level, chunkSize: 1024 * 1024});
  return (block) => zlib.zstdCompressSync(block, {chunkSize: 1024 * 1024, params: {[zlib.constants.ZSTD_c_compressionLevel]: level}});
}

/**
 * What each compression level costs and gains on this dump: single-threaded, in-process, on a
 * sample of blocks, so the numbers compare levels with each other, not with the end-to-end runs.
 */
export async function measureLevels(dumpFile: string, sampleCount = 48): Promise<LevelResult[]> {
  const blocks = await sampleBlocks(dumpFile, sampleCount);
  const plainBytes = blocks.reduce((sum, block) => sum + block.length, 0);
  const plan: Array<['gzip' | 'zstd', number]> = [
    ['gzip', 1], ['gzip', 3], ['gzip', 4], ['gzip', 5], ['gzip', 6], ['gzip', 9],
    ['zstd', 1], ['zstd', 3], ['zstd', 6], ['zstd', 9], ['zstd', 19],
  ];
  const results: LevelResult[] = [];
  for (const [algorithm, level] of plan) {
    const compress = compressor(algorithm, level);
    const started = process.cpuUsage();
    let compressedBytes = 0;
    for (const block of blocks) compressedBytes += compress(block).length;
    const used = process.cpuUsage(started);
    const seconds = (used.user + used.system) / 1e6;
    results.push({algorithm, level, megabytesPerCoreSecond: plainBytes / 1e6 / seconds, ratio: plainBytes / compressedBytes});
  }
  return results;
}

export function formatLevels(results: readonly LevelResult[]): string {
  const lines = ['algorithm  level  MB/s per core  ratio', '---------  -----  -------------  -----'];
  for (const result of results) {
    lines.push(`${result.algorithm.padEnd(9)}  ${String(result.level).padStart(5)}  ${result.megabytesPerCoreSecond.toFixed(0).padStart(13)}  ${result.ratio.toFixed(2).padStart(5)}`);
  }
  return lines.join('\n');
}
