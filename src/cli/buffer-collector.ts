import {setFlagsFromString} from 'node:v8';
import {runInNewContext} from 'node:vm';

type CollectGarbage = (options: {type: 'minor' | 'major'; execution: 'sync' | 'async'}) => void;

const INTERVAL_MS = 100;

let collect: CollectGarbage | undefined;

/**
 * Frees the buffers a transfer has finished with, every 100 ms while a command runs.
 *
 * A backup or restore allocates a gigabyte of Buffers (pipe reads, compressor and decompressor
 * output) but hardly any other JavaScript objects, so V8's young generation, whose collection is
 * what frees a dead Buffer's memory, rarely fills: dead buffers waited for V8's 64 MB
 * external-memory limit, and a restore's peak RSS was 160 MB for a 1 GB database against 120 MB
 * for a 100 MB one. A young-generation collection of a heap this small takes well under a
 * millisecond. Node has no API for it, hence V8's own `gc` through a flag and a fresh context.
 */
export function startBufferCollector(): () => void {
  if (!collect) {
    try {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as CollectGarbage;
    } catch {
      return () => {};
    }
  }
  const run = collect;
  const timer = setInterval(() => run({type: 'minor', execution: 'async'}), INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
