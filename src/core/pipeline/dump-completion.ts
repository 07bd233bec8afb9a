import {Transform, type TransformCallback} from 'node:stream';

/** pg_dump's last comment in a plain dump; written only after every object was dumped. */
export const DUMP_COMPLETION_COMMENT = '-- PostgreSQL database dump complete';

/** Enough of the end to hold the completion comment and pg_dump's `\unrestrict <key>` line after it. */
const TAIL_BYTES = 1024;

const TRAILING_UNRESTRICT = /\n\\unrestrict [A-Za-z0-9]+\s*$/;

/**
 * Whether a plain dump's last bytes are pg_dump's completion block (`--`, the completion comment,
 * `--`), optionally followed by the `\unrestrict` line of pg_dump 15.14 and later, and blank lines.
 * A dump cut short anywhere else (a killed pg_dump behind a wrapper that exited 0, a file
 * truncated and re-checksummed) lacks it.
 */
export function endsWithDumpCompletion(tail: string): boolean {
  const withoutUnrestrict = tail.replace(TRAILING_UNRESTRICT, '\n');
  return withoutUnrestrict.replace(/\s+$/, '').endsWith(`--\n${DUMP_COMPLETION_COMMENT}\n--`);
}

/** Passes a plain dump through unchanged and, at its end, says whether it carries pg_dump's completion block. */
export class DumpCompletionObserver extends Transform {
  #tail: Buffer = Buffer.alloc(0);
  #complete: boolean | undefined;
  readonly #refuseIncomplete: (() => Error) | undefined;

  /** With `refuseIncomplete`, the stream fails at its end instead of finishing when the block is missing. */
  constructor(options: {refuseIncomplete?: () => Error} = {}) {
    super();
    this.#refuseIncomplete = options.refuseIncomplete;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#tail = chunk.length >= TAIL_BYTES ? chunk.subarray(chunk.length - TAIL_BYTES) : Buffer.concat([this.#tail, chunk]).subarray(-TAIL_BYTES);
    // A subarray of a pooled block would be overwritten when the block is reused.
    if (this.#tail.buffer === chunk.buffer) this.#tail = Buffer.from(this.#tail);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#complete = endsWithDumpCompletion(this.#tail.toString('latin1'));
    callback(!this.#complete && this.#refuseIncomplete ? this.#refuseIncomplete() : null);
  }

  /** Final once the stream has finished. */
  get complete(): boolean {
    if (this.#complete === undefined) throw new Error('completion read before the stream finished');
    return this.#complete;
  }
}
