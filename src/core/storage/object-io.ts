import {Readable} from 'node:stream';

import type {ObjectInfo, PutOptions, StorageBackend} from '../../contracts/storage.js';

/** Reads a small object (metadata, a lock) whole; refuses anything larger than `maxBytes`. */
export async function readSmallObject(storage: StorageBackend, key: string, maxBytes = 1024 * 1024): Promise<string> {
  const stream = await storage.get(key);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      stream.destroy();
      throw Object.assign(new Error(`object '${key}' is larger than ${maxBytes} bytes, more than synapse-backup ever writes there`), {code: 'EFBIG'});
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function writeSmallObject(storage: StorageBackend, key: string, text: string, options: PutOptions = {}): Promise<ObjectInfo> {
  return storage.put(key, Readable.from([Buffer.from(text, 'utf8')]), options);
}
