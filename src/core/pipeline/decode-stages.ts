import type {Transform} from 'node:stream';

import type {CompressionAlgorithm} from '../naming/index.js';
import {createDecompressStream} from './compression.js';
import {SizeLimit} from './observers.js';

export interface DecodeStage {
  readonly step: 'decrypt' | 'decompress';
  readonly stream: Transform;
}

/**
 * The one way a stored backup becomes SQL again, for restore, test-restore and verify alike:
 * decrypt (when encrypted), decompress, and stop at the size of SQL recorded at backup time.
 */
export function decodeStages(backup: {readonly compression: {readonly algorithm: CompressionAlgorithm}; readonly sizes: {readonly plaintextBytes: number}}, decrypt: Transform | undefined): DecodeStage[] {
  return [
    ...(decrypt ? [{step: 'decrypt' as const, stream: decrypt}] : []),
    {step: 'decompress', stream: createDecompressStream(backup.compression.algorithm)},
    {step: 'decompress', stream: new SizeLimit(backup.sizes.plaintextBytes)},
  ];
}
