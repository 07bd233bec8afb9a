import {Transform, type TransformCallback} from 'node:stream';

/** Compresses one block into a complete, independently decodable member (a gzip member, a zstd frame). */
export type BlockCodec = (block: Buffer) => Promise<Buffer>;

export interface ParallelCompressorOptions {
  readonly compressBlock: BlockCodec;
  /** Input bytes per block; a block is cut at the first chunk boundary at or past this size. */
  readonly blockSize: number;
  /** Blocks being compressed or waiting to be written at once: bounds memory to about maxInFlight × blockSize × 2. */
  readonly maxInFlight: number;
  /** Called with each input chunk once the compressor no longer reads it (to return pooled blocks). */
  readonly releaseInput?: (chunk: Buffer) => void;
  /** Frees the codec's contexts: called when the last block is written and when the stream is destroyed, so it may run twice. */
  readonly closeCodec?: () => void;
}

/**
 * Cuts the stream into blocks, compresses up to `maxInFlight` of them at a time off the main thread
 * (the codec runs on the libuv threadpool) and writes the results in input order. Concatenated
 * gzip members and zstd frames are each a valid stream that `gunzip` and `zstd -d` read whole, so
 * the output stays standard while every core compresses, the way pigz and `zstd -T` do it.
 *
 * Backpressure: the writable callback is held while `maxInFlight` blocks are pending, so the
 * producer (pg_dump) slows down instead of memory growing.
 */
export class ParallelBlockCompressor extends Transform {
  readonly #options: ParallelCompressorOptions;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Compression jobs in input order; the head is written as soon as it is done. */
  readonly #inFlight: Array<Promise<Buffer>> = [];
  #draining: Promise<void> | undefined;
  #waitingWriter: (() => void) | undefined;
  #waitingReader: (() => void) | undefined;
  #blocksSubmitted = 0;
  #failed = false;

  constructor(options: ParallelCompressorOptions) {
    super({readableHighWaterMark: options.blockSize});
    if (!(options.blockSize > 0) || !(options.maxInFlight >= 1)) throw new RangeError('blockSize and maxInFlight must be positive');
    this.#options = options;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes >= this.#options.blockSize) this.#submitBlock();
    if (this.#inFlight.length < this.#options.maxInFlight) {
      callback();
      return;
    }
    this.#waitingWriter = () => callback();
  }

  override _flush(callback: TransformCallback): void {
    // An empty input still becomes one member: zero bytes are not a valid .gz or .zst file.
    if (this.#pendingBytes > 0 || this.#blocksSubmitted === 0) this.#submitBlock();
    void this.#drain().then(() => {
      this.#options.closeCodec?.();
      if (!this.#failed) callback();
    });
  }

  override _read(size: number): void {
    const resume = this.#waitingReader;
    this.#waitingReader = undefined;
    resume?.();
    super._read(size);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#failed = true;
    this.#pending = [];
    this.#options.closeCodec?.();
    callback(error);
  }

  #submitBlock(): void {
    const chunks = this.#pending;
    const release = this.#options.releaseInput;
    const whole = chunks.length === 1;
    const block = whole ? chunks[0]! : Buffer.concat(chunks, this.#pendingBytes);
    // A concatenated block is a copy, so its chunks are free at once; a single chunk once compressed.
    if (!whole && release) for (const chunk of chunks) release(chunk);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#blocksSubmitted++;
    const job = this.#options.compressBlock(block);
    if (whole && release) {
      const done = (): void => release(block);
      job.then(done, done);
    }
    // Rejections are handled in order by #drain; this only keeps an early one from counting as unhandled.
    job.catch(() => {});
    this.#inFlight.push(job);
    this.#draining ??= this.#drain();
  }

  /** Writes finished blocks in order until none is in flight; one drain loop runs at a time. */
  async #drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    try {
      while (this.#inFlight.length > 0 && !this.#failed) {
        let compressed: Buffer;
        try {
          compressed = await this.#inFlight[0]!;
        } catch (error) {
          this.#failed = true;
          this.destroy(error as Error);
          return;
        }
        this.#inFlight.shift();
        // Push returns false when the consumer (encryption, storage) is behind: wait for it to ask for more.
        if (!this.push(compressed)) await new Promise<void>((resolve) => (this.#waitingReader = resolve));
        const release = this.#waitingWriter;
        this.#waitingWriter = undefined;
        release?.();
      }
    } finally {
      this.#draining = undefined;
    }
  }
}
