import type {CompressionSettings} from '../pipeline/compression.js';

/** A file for a WAL encoding worker to read and compress, or (over `inMemoryLimit` bytes) hash. */
export interface EncodingJob {
  readonly id: number;
  readonly path: string;
  readonly compression: CompressionSettings;
  readonly inMemoryLimit: number;
}

/** What the worker says of a job: the file's size and compressed content (or SHA-256, see EncodedWalFile), or the step that failed and why. */
export type EncodingAnswer =
  | {readonly id: number; readonly bytes: number; readonly compressed: Uint8Array}
  | {readonly id: number; readonly bytes: number; readonly sha256: string}
  | {readonly id: number; readonly failure: {readonly step: 'read' | 'compress'; readonly message: string; readonly code?: string}};
