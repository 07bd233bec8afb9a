import type {CompressionSettings} from '../pipeline/compression.js';

/** A file for a WAL encoding worker to read, hash and (up to `inMemoryLimit` bytes) compress. */
export interface EncodingJob {
  readonly id: number;
  readonly path: string;
  readonly compression: CompressionSettings;
  readonly inMemoryLimit: number;
}

/** What the worker says of a job: the file's digest and compressed content, or the step that failed and why. */
export type EncodingAnswer =
  | {readonly id: number; readonly bytes: number; readonly sha256: string; readonly compressed?: Uint8Array}
  | {readonly id: number; readonly failure: {readonly step: 'read' | 'compress'; readonly message: string; readonly code?: string}};
