import {randomBytes} from 'node:crypto';
import {Transform, type TransformCallback} from 'node:stream';

/** pg_dump 13.22, 14.19, 15.14, 16.10, 17.6 and 18 write, and their psql understands, `\restrict`. */
const FIRST_RESTRICT_RELEASE: Readonly<Record<number, number>> = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6};

/** Whether a psql of this version refuses meta-commands after `\restrict` (psql 18 and later always). */
export function psqlSupportsRestrict(version: string): boolean {
  const match = /^(\d+)(?:\.(\d+))?/.exec(version);
  if (!match) return false;
  const major = Number(match[1]);
  const minor = match[2] === undefined ? 0 : Number(match[2]);
  if (major >= 18) return true;
  const first = FIRST_RESTRICT_RELEASE[major];
  return first !== undefined && minor >= first;
}

const DUMP_RESTRICT_LINE = /^\\restrict [A-Za-z0-9]+\r?$/;
const DUMP_UNRESTRICT_LINE = /^\\unrestrict [A-Za-z0-9]+\r?$/;
/** How much of the dump's start is searched for pg_dump's own `\restrict` line. */
const HEAD_LIMIT = 64 * 1024;
/** How much of the dump's end is held back to find pg_dump's own `\unrestrict` line. */
const TAIL_BYTES = 4096;

/**
 * Feeds a plain dump to psql so that it can run no meta-command: the stream opens with
 * `\restrict <key>`, a random key the backup cannot know, and closes with `\unrestrict <key>`.
 * psql then refuses any `\!`, `\o`, `\connect` or `\copy ... program` inside the dump itself.
 *
 * pg_dump 15.14 and later write a `\restrict`/`\unrestrict` pair of their own, which psql would
 * refuse inside ours; only those two are dropped, and only where pg_dump puts them: before the
 * first statement and as the last line. They are not trusted: a crafted dump carrying them still
 * runs under our key, and any other such line reaches psql, which refuses it.
 */
export class RestrictedDumpStream extends Transform {
  readonly #key = randomBytes(24).toString('hex');
  #head: Buffer | undefined = Buffer.alloc(0);
  /** The last chunks, held back whole (no copying on the hot path) while they hold under TAIL_BYTES past the oldest. */
  readonly #held: Buffer[] = [];
  #heldBytes = 0;

  constructor() {
    super();
    this.push(`\\restrict ${this.#key}\n`);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let data = chunk;
    if (this.#head !== undefined) {
      const head = Buffer.concat([this.#head, data]);
      const decided = this.#stripHead(head);
      if (decided === undefined) {
        this.#head = head;
        callback();
        return;
      }
      this.#head = undefined;
      data = decided;
    }
    this.#held.push(data);
    this.#heldBytes += data.length;
    while (this.#held.length > 1 && this.#heldBytes - this.#held[0]!.length >= TAIL_BYTES) {
      const oldest = this.#held.shift()!;
      this.#heldBytes -= oldest.length;
      this.push(oldest);
    }
    callback();
  }

  /** The head without pg_dump's `\restrict` line, once the first statement is in sight; undefined while undecided. */
  #stripHead(head: Buffer): Buffer | undefined {
    let lineStart = 0;
    for (;;) {
      const newline = head.indexOf(0x0a, lineStart);
      if (newline === -1) return head.length >= HEAD_LIMIT ? head : undefined;
      const line = head.toString('utf8', lineStart, newline);
      if (line.trim() === '' || line.startsWith('--')) {
        lineStart = newline + 1;
        continue;
      }
      return DUMP_RESTRICT_LINE.test(line) ? Buffer.concat([head.subarray(0, lineStart), head.subarray(newline + 1)]) : head;
    }
  }

  override _flush(callback: TransformCallback): void {
    let tail = Buffer.concat([this.#head ?? Buffer.alloc(0), ...this.#held]);
    const text = tail.toString('latin1');
    // The last line that is not blank or a comment; pg_dump's `\unrestrict` is that line.
    const lines = text.split('\n');
    for (let index = lines.length - 1; index >= 0; index--) {
      const line = lines[index]!;
      if (line.trim() === '' || line.startsWith('--')) continue;
      if (DUMP_UNRESTRICT_LINE.test(line)) {
        lines.splice(index, 1);
        tail = Buffer.from(lines.join('\n'), 'latin1');
      }
      break;
    }
    if (tail.length > 0) this.push(tail);
    this.push(`${tail.length > 0 && tail.at(-1) !== 0x0a ? '\n' : ''}\\unrestrict ${this.#key}\n`);
    callback();
  }
}
