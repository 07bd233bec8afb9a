import {PassThrough, Writable, type Transform} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import type {StorageBackend} from '../../contracts/storage.js';
import type {BackupMetadata} from '../metadata/index.js';
import {ByteCounter, DumpCompletionObserver, Sha256Observer, StreamChain, StreamChainFailure, TarCompletionObserver, decodeStages} from '../pipeline/index.js';

/** Turns a backup's stored bytes back into its SQL: decrypt (when encrypted), then decompress. */
export interface DecodeSteps {
  /** Undefined for an unencrypted backup. */
  readonly decrypt: Transform | undefined;
}

export interface DecodeOutcome {
  /** The first step that failed, and how; undefined when the whole stream decoded. */
  readonly failure: {readonly step: 'decrypt' | 'decompress'; readonly message: string} | undefined;
  readonly plaintextBytes: number;
  /** Undefined when decoding failed before the end. */
  readonly plaintextSha256: string | undefined;
  /** Whether the SQL ends with pg_dump's completion block (a physical backup's tar with its end-of-archive marker); undefined when decoding failed. */
  readonly complete: boolean | undefined;
}

export interface ReadBackOutcome {
  readonly storedBytes: number;
  readonly storedSha256: string;
  /** Undefined when the backup was not decoded (encrypted, and no key). */
  readonly decoded: DecodeOutcome | undefined;
}

const discard = (): Writable => new Writable({write: (_chunk, _encoding, callback) => callback()});

/**
 * The decode side of a read-back, fed as a branch: it never slows the stored file's read to
 * report a failure. When a step fails (a wrong key, a bad gzip or zstd checksum, a cut stream),
 * the branch records it and swallows the rest of the bytes, so that the stored file's size and
 * SHA-256 are still measured to the end and a damaged file is told apart from a bad encoding.
 */
class DecodeBranch extends Writable {
  readonly #input = new PassThrough();
  readonly #plaintextCount = new ByteCounter();
  readonly #plaintextHash = new Sha256Observer();
  readonly #completion: DumpCompletionObserver | TarCompletionObserver;
  readonly #done: Promise<void>;
  #failure: DecodeOutcome['failure'];
  #failed = false;
  #pending: (() => void) | undefined;

  constructor(steps: DecodeSteps, metadata: BackupMetadata, signal: AbortSignal) {
    super();
    this.#completion = metadata.dump.tool === 'pg_basebackup' ? new TarCompletionObserver() : new DumpCompletionObserver();
    const decode = decodeStages(metadata, steps.decrypt);
    for (const {step, stream} of decode) {
      stream.on('error', (error: Error) => {
        this.#failure ??= {step, message: error.message};
      });
    }
    const streams = [this.#input, ...decode.map(({stream}) => stream), this.#plaintextCount, this.#plaintextHash, this.#completion, discard()];
    this.#done = pipeline(streams as unknown as NodeJS.ReadWriteStream[], {signal}).catch((error: unknown) => {
      this.#failed = true;
      this.#failure ??= {step: 'decompress', message: (error as Error).message};
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.();
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#failed || this.#input.write(chunk)) {
      callback();
      return;
    }
    this.#pending = callback;
    this.#input.once('drain', () => {
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.();
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#failed) this.#input.end();
    void this.#done.then(() => callback());
  }

  get outcome(): DecodeOutcome {
    if (this.#failure) return {failure: this.#failure, plaintextBytes: this.#plaintextCount.bytes, plaintextSha256: undefined, complete: undefined};
    return {failure: undefined, plaintextBytes: this.#plaintextCount.bytes, plaintextSha256: this.#plaintextHash.digest, complete: this.#completion.complete};
  }
}

/**
 * Reads a backup's stored file once, to the end, and measures everything that can be measured
 * without a database: the stored bytes' size and SHA-256 and, given the decode steps, the SQL's
 * size, SHA-256 and completion block. Memory stays flat: nothing is held but the stream's buffers.
 * Storage failures and cancellation reject; every finding about the bytes resolves.
 */
export async function readBackStoredBackup(
  storage: StorageBackend,
  metadata: BackupMetadata,
  steps: DecodeSteps | undefined,
  options: {signal?: AbortSignal; onProgress?: (bytes: number) => void} = {},
): Promise<ReadBackOutcome> {
  const chain = new StreamChain(options.signal);
  const counter = new ByteCounter(options.onProgress);
  const hash = new Sha256Observer();
  const branch = steps ? new DecodeBranch(steps, metadata, chain.signal) : undefined;
  let source;
  try {
    source = await storage.get(metadata.backupName, {signal: chain.signal});
  } catch (error) {
    steps?.decrypt?.destroy();
    branch?.destroy();
    throw error;
  }
  try {
    await chain.run([
      {stage: 'verify', stream: source},
      {stage: 'verify', stream: counter},
      {stage: 'verify', stream: hash},
      {stage: 'verify', stream: branch ?? discard()},
    ]);
  } catch (error) {
    throw error instanceof StreamChainFailure ? error.error : error;
  }
  return {storedBytes: counter.bytes, storedSha256: hash.digest, decoded: branch?.outcome};
}
