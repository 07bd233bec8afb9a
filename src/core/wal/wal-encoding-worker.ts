/**
 * A WAL encoding worker's thread (see WalEncodingWorkers): reads and compresses whole files, one at
 * a time, with blocking calls on its own core, and hands back each file's size and compressed
 * content (or, for one too large to hold, its SHA-256: see EncodedWalFile). Nothing here sees a key
 * or a storage.
 */
import {createHash} from 'node:crypto';
import {closeSync, fstatSync, openSync, readSync} from 'node:fs';
import {parentPort} from 'node:worker_threads';

import {BLOCK_SIZE, compressBlockSync} from '../pipeline/compression.js';
import type {EncodingAnswer, EncodingJob} from './wal-encoding-protocol.js';

const block = Buffer.allocUnsafeSlow(BLOCK_SIZE);

function failed(id: number, step: 'read' | 'compress', error: unknown): EncodingAnswer {
  const {message, code} = error as NodeJS.ErrnoException;
  return {id, failure: {step, message: message ?? String(error), ...(typeof code === 'string' ? {code} : {})}};
}

/** The compressed frames in one buffer of its own, which is moved to the main thread, not copied. */
function ownedConcat(frames: readonly Buffer[]): Buffer {
  const whole = Buffer.allocUnsafeSlow(frames.reduce((total, frame) => total + frame.length, 0));
  let offset = 0;
  for (const frame of frames) offset += frame.copy(whole, offset);
  return whole;
}

function encode(job: EncodingJob): EncodingAnswer {
  let descriptor: number;
  try {
    descriptor = openSync(job.path, 'r');
  } catch (error) {
    return failed(job.id, 'read', error);
  }
  try {
    let size: number;
    try {
      size = fstatSync(descriptor).size;
    } catch (error) {
      return failed(job.id, 'read', error);
    }
    const inMemory = size <= job.inMemoryLimit;
    const hash = createHash('sha256');
    const frames: Buffer[] = [];
    let bytes = 0;
    for (;;) {
      let read: number;
      try {
        read = readSync(descriptor, block, 0, block.length, null);
      } catch (error) {
        return failed(job.id, 'read', error);
      }
      if (read === 0) break;
      const data = block.subarray(0, read);
      bytes += read;
      if (!inMemory) {
        // Too large to hold: hashed now (its tag is made from the SHA-256), encoded by each upload from the disk.
        hash.update(data);
        continue;
      }
      try {
        frames.push(compressBlockSync(job.compression, data));
      } catch (error) {
        return failed(job.id, 'compress', error);
      }
    }
    if (!inMemory) return {id: job.id, bytes, sha256: hash.digest('hex')};
    try {
      // An empty file still becomes one frame: zero bytes are not a valid .gz or .zst file.
      if (frames.length === 0) frames.push(compressBlockSync(job.compression, Buffer.alloc(0)));
    } catch (error) {
      return failed(job.id, 'compress', error);
    }
    return {id: job.id, bytes, compressed: ownedConcat(frames)};
  } finally {
    closeSync(descriptor);
  }
}

parentPort!.on('message', (job: EncodingJob) => {
  const answer = encode(job);
  parentPort!.postMessage(answer, 'compressed' in answer ? [answer.compressed.buffer as ArrayBuffer] : []);
});
