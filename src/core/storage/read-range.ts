import {Readable} from 'node:stream';

import type {StorageBackend} from '../../contracts/storage.js';

/**
 * The bytes [offset, offset + length) of an object. A backend without range reads (see
 * StorageCapabilities.rangeReads) is read from the start, the bytes before the range dropped and
 * the read stopped after it: the same bytes, knowingly at the cost of reading the head.
 */
export async function readRange(storage: StorageBackend, key: string, range: {readonly offset: number; readonly length?: number; readonly signal?: AbortSignal}): Promise<Readable> {
  if (storage.capabilities.rangeReads) return storage.get(key, range);
  const whole = await storage.get(key, range.signal ? {signal: range.signal} : {});
  const end = range.length === undefined ? Number.POSITIVE_INFINITY : range.offset + range.length;
  async function* slice(): AsyncGenerator<Buffer> {
    let position = 0;
    try {
      for await (const chunk of whole as AsyncIterable<Buffer>) {
        const from = Math.max(range.offset - position, 0);
        const to = Math.min(end - position, chunk.length);
        position += chunk.length;
        if (to > from) yield chunk.subarray(from, to);
        if (position >= end) return;
      }
    } finally {
      whole.destroy();
    }
  }
  return Readable.from(slice());
}
