import {createHash, type Hash, type Hmac} from 'node:crypto';
import {Transform, type TransformCallback} from 'node:stream';

/**
 * Passes bytes through unchanged and counts them; `onProgress` sees the running total. The count
 * is final once the stream has finished.
 */
export class ByteCounter extends Transform {
  bytes = 0;
  readonly #onProgress: ((bytes: number) => void) | undefined;

  constructor(onProgress?: (bytes: number) => void) {
    super();
    this.#onProgress = onProgress;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.#onProgress?.(this.bytes);
    callback(null, chunk);
  }
}

/** Passes bytes through unchanged into a hash (a keyed one, an HMAC, too); `digest` holds it (hex) once the stream has finished. */
export class DigestObserver extends Transform {
  readonly #hash: Hash | Hmac;
  #digest: string | undefined;

  constructor(hash: Hash | Hmac) {
    super();
    this.#hash = hash;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash.digest('hex');
    callback();
  }

  get digest(): string {
    if (this.#digest === undefined) throw new Error('a digest read before the stream finished');
    return this.#digest;
  }
}

/** Passes bytes through unchanged; `digest` holds their SHA-256 (hex) once the stream has finished. */
export class Sha256Observer extends DigestObserver {
  constructor() {
    super(createHash('sha256'));
  }
}

/** Runs a small buffer through a transform (a cipher, for a document of a few KB) and returns all it wrote. */
export async function transformWhole(transform: Transform, input: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  transform.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve, reject) => {
    transform.once('end', resolve);
    transform.once('error', reject);
    transform.end(input);
  });
  return Buffer.concat(chunks);
}

/**
 * Passes bytes through until more than `limit` have passed, then fails: a stored file that
 * decodes to more SQL than was dumped (a decompression bomb in a planted backup) is stopped at the
 * recorded size, not decoded to its end.
 */
export class SizeLimit extends Transform {
  #bytes = 0;
  readonly #limit: number;
  readonly #what: string;

  constructor(limit: number, what = 'it decodes to more than the %d bytes of SQL recorded at backup time') {
    super();
    this.#limit = limit;
    this.#what = what;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.#limit) {
      callback(new Error(`${this.#what.replace('%d', String(this.#limit))}; stopped there`));
      return;
    }
    callback(null, chunk);
  }
}
