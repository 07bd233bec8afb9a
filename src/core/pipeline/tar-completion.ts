import {Transform, type TransformCallback} from 'node:stream';

const TAR_BLOCK = 512;
/** A tar archive ends with two zero blocks; pg_basebackup writes them only after its last member. */
const END_OF_ARCHIVE = 2 * TAR_BLOCK;

/** Whether a tar stream of `length` bytes ending in `tail` is whole: block-aligned and closed by the end-of-archive marker. */
export function endsLikeCompleteTar(length: number, tail: Buffer): boolean {
  return length >= END_OF_ARCHIVE && length % TAR_BLOCK === 0 && tail.length >= END_OF_ARCHIVE && tail.subarray(-END_OF_ARCHIVE).every((byte) => byte === 0);
}

/** The last bytes of one member kept (a manifest lists every file; what is read of it is at its end). */
const KEPT_MEMBER_BYTES = 64 * 1024;

function octal(field: Buffer): number {
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

/**
 * Passes a tar stream through unchanged and, at its end, says whether it is whole: what the
 * completion line is to a plain dump, the end-of-archive marker is to pg_basebackup's tar. It also
 * keeps the end of the members named in `keep` (top-level regular files, such as backup_manifest).
 */
export class TarCompletionObserver extends Transform {
  #tail: Buffer = Buffer.alloc(0);
  #length = 0;
  #complete: boolean | undefined;
  readonly #refuseIncomplete: (() => Error) | undefined;
  readonly #keep: ReadonlySet<string>;
  readonly #kept = new Map<string, Buffer>();
  /** Header bytes gathered so far, when a header straddles two chunks. */
  #header: Buffer = Buffer.alloc(0);
  /** Bytes of the current member's content (and padding) still to come. */
  #remaining = 0;
  #contentLeft = 0;
  #member: string | undefined;
  #ended = false;

  constructor(options: {refuseIncomplete?: () => Error; keep?: readonly string[]} = {}) {
    super();
    this.#refuseIncomplete = options.refuseIncomplete;
    this.#keep = new Set(options.keep ?? []);
  }

  /** The kept end of a member, once the stream has finished; undefined when the archive had none of that name. */
  member(name: string): Buffer | undefined {
    return this.#kept.get(name);
  }

  #scan(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.#ended) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - offset);
        const content = Math.min(take, this.#contentLeft);
        if (this.#member !== undefined && content > 0) {
          const piece = chunk.subarray(offset, offset + content);
          this.#kept.set(this.#member, Buffer.from(Buffer.concat([this.#kept.get(this.#member) ?? Buffer.alloc(0), piece]).subarray(-KEPT_MEMBER_BYTES)));
        }
        this.#contentLeft -= content;
        this.#remaining -= take;
        offset += take;
        continue;
      }
      const need = TAR_BLOCK - this.#header.length;
      const piece = chunk.subarray(offset, offset + need);
      this.#header = this.#header.length === 0 && piece.length === TAR_BLOCK ? piece : Buffer.concat([this.#header, piece]);
      offset += piece.length;
      if (this.#header.length < TAR_BLOCK) return;
      const header = this.#header;
      this.#header = Buffer.alloc(0);
      if (header.every((byte) => byte === 0)) {
        this.#ended = true;
        return;
      }
      const size = octal(header.subarray(124, 136));
      const type = String.fromCharCode(header[156]!);
      const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      const prefix = header.subarray(257, 263).toString('latin1').startsWith('ustar') ? header.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '') : '';
      const full = prefix ? `${prefix}/${name}` : name;
      this.#member = (type === '0' || type === '\0') && this.#keep.has(full.replace(/^\.\//, '')) ? full.replace(/^\.\//, '') : undefined;
      if (this.#member !== undefined) this.#kept.set(this.#member, Buffer.alloc(0));
      this.#contentLeft = size;
      this.#remaining = Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#keep.size > 0) this.#scan(chunk);
    this.#length += chunk.length;
    // Copied: a pooled block is overwritten when it is reused.
    this.#tail = Buffer.from(chunk.length >= END_OF_ARCHIVE ? chunk.subarray(chunk.length - END_OF_ARCHIVE) : Buffer.concat([this.#tail, chunk]).subarray(-END_OF_ARCHIVE));
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#complete = endsLikeCompleteTar(this.#length, this.#tail);
    callback(!this.#complete && this.#refuseIncomplete ? this.#refuseIncomplete() : null);
  }

  get complete(): boolean {
    if (this.#complete === undefined) throw new Error('completion read before the stream finished');
    return this.#complete;
  }
}
