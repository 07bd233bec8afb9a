import type {Transform} from 'node:stream';

/** A zlib-family compressor stream (Gzip, ZstdCompress). */
export interface CompressorEngine extends Transform {
  flush(kind: number, callback: () => void): void;
  close(callback?: () => void): void;
}

export interface ReusableCodecOptions<Engine extends CompressorEngine> {
  readonly create: () => Engine;
  /** The flush that completes a member or frame: Z_FINISH for gzip, ZSTD_e_end for zstd. */
  readonly endFlag: number;
  /** Readies an engine for the next block after endFlag: deflate needs a reset, zstd starts a new frame by itself. */
  readonly prepareNext?: (engine: Engine) => void;
}

/**
 * Compresses each block into a complete member (gzip) or frame (zstd) with one of a few long-lived
 * compressors, at most one per block in flight. A compressor per block allocated a fresh zlib or
 * zstd context each time, a megabyte or more that Node reports to V8 as external memory: a 1 GB
 * dump churned through 1.4 GB of it and V8 answered with a full mark-compact every 64 MB, about
 * 30 per backup, half a CPU-second on a 2-core machine. Reused, they cost one context per lane.
 */
export class ReusableBlockCodec<Engine extends CompressorEngine = CompressorEngine> {
  readonly #options: ReusableCodecOptions<Engine>;
  readonly #idle: Engine[] = [];
  readonly #all = new Set<Engine>();
  #closed = false;

  constructor(options: ReusableCodecOptions<Engine>) {
    this.#options = options;
  }

  /** How many compressors exist (one per block that was ever in flight at the same time). */
  get engines(): number {
    return this.#all.size;
  }

  compress(block: Buffer): Promise<Buffer> {
    if (this.#closed) return Promise.reject(new Error('the block compressor is closed'));
    const engine = this.#idle.pop() ?? this.#create();
    return new Promise<Buffer>((resolve, reject) => {
      const output: Buffer[] = [];
      let failed = false;
      const collect = (chunk: Buffer): void => {
        output.push(chunk);
      };
      const fail = (error: Error): void => {
        failed = true;
        engine.off('data', collect);
        // A failed context is not trusted again.
        this.#all.delete(engine);
        engine.close();
        reject(error);
      };
      engine.on('data', collect);
      engine.once('error', fail);
      engine.write(block);
      engine.flush(this.#options.endFlag, () => {
        // Also called, after 'error', when the engine failed.
        if (failed) return;
        engine.off('data', collect);
        engine.off('error', fail);
        if (this.#closed) {
          engine.close();
        } else {
          this.#options.prepareNext?.(engine);
          this.#idle.push(engine);
        }
        resolve(output.length === 1 ? output[0]! : Buffer.concat(output));
      });
    });
  }

  /** Frees every compressor's context now rather than at the next full GC; calling it again does nothing. */
  close(): void {
    this.#closed = true;
    for (const engine of this.#idle) engine.close();
    this.#idle.length = 0;
    this.#all.clear();
  }

  #create(): Engine {
    const engine = this.#options.create();
    this.#all.add(engine);
    return engine;
  }
}
