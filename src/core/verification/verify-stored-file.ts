import {Writable} from 'node:stream';

import type {StorageBackend} from '../../contracts/storage.js';
import type {BackupMetadata} from '../metadata/index.js';
import {ByteCounter, Sha256Observer, StreamChain, StreamChainFailure} from '../pipeline/index.js';

export interface StoredFileCheck {
  readonly bytes: number;
  readonly sha256: string;
  /** Why the file does not match its metadata; undefined when it does. */
  readonly problem: string | undefined;
}

/**
 * Reads a backup's stored file whole and compares its size and SHA-256 with the metadata. Storage
 * failures reject; a mismatch resolves with `problem` set, since it is a finding, not an error.
 */
export async function checkStoredFile(
  storage: StorageBackend,
  metadata: BackupMetadata,
  options: {signal?: AbortSignal; onProgress?: (bytes: number) => void} = {},
): Promise<StoredFileCheck> {
  const counter = new ByteCounter(options.onProgress);
  const hash = new Sha256Observer();
  const sink = new Writable({write: (_chunk, _encoding, callback) => callback()});
  const chain = new StreamChain(options.signal);
  const source = await storage.get(metadata.backupName, {signal: chain.signal});
  try {
    await chain.run([{stage: 'verify', stream: source}, {stage: 'verify', stream: counter}, {stage: 'verify', stream: hash}, {stage: 'verify', stream: sink}]);
  } catch (error) {
    throw error instanceof StreamChainFailure ? error.error : error;
  }
  const expected = metadata.sizes.storedBytes;
  let problem: string | undefined;
  if (counter.bytes !== expected) problem = `it has ${counter.bytes} bytes, the metadata records ${expected}${counter.bytes < expected ? ' (truncated)' : ''}`;
  else if (hash.digest !== metadata.checksums.stored) problem = `SHA-256 ${hash.digest} does not match ${metadata.checksums.stored} recorded at backup time`;
  return {bytes: counter.bytes, sha256: hash.digest, problem};
}
