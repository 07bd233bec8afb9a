import {Transform, type TransformCallback} from 'node:stream';

/** pg_dump writes each of these as one line, at the start of a statement. */
const OWNER_STATEMENT = /^ALTER [A-Z][A-Z ]* .* OWNER TO .*;\r?$/;
const PRIVILEGE_STATEMENT = /^(?:GRANT|REVOKE|ALTER DEFAULT PRIVILEGES) .*;\r?$/;
const COPY_START = /^COPY .* FROM stdin;\r?$/;
const COPY_END = /^\\\.\r?$/;
const DOLLAR_TAG = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/;

export interface OwnershipFilterOptions {
  /** Drop `ALTER ... OWNER TO`: every object is owned by the restoring role. */
  readonly owners: boolean;
  /** Drop GRANT, REVOKE and ALTER DEFAULT PRIVILEGES: no role but the restoring one is named. */
  readonly privileges: boolean;
}

/**
 * Drops a plain dump's ownership (and, if asked, privilege) statements, for a restore onto a server
 * without the backup's roles, as pg_restore --no-owner / --no-privileges do for archives. Only
 * whole lines at the start of a statement are dropped: the filter follows COPY data, quoted
 * strings, quoted identifiers, dollar-quoted bodies and comments, so a line inside a function body
 * or a row of data that looks like such a statement passes unchanged.
 */
export class OwnershipFilter extends Transform {
  readonly #options: OwnershipFilterOptions;
  #partial = '';
  #inCopy = false;
  #inString = false;
  #inIdentifier = false;
  #dollarTag: string | undefined;
  /** Dropped statements, for the report. */
  dropped = 0;

  constructor(options: OwnershipFilterOptions) {
    super();
    this.#options = options;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // latin1 maps bytes one to one, so any encoding's bytes pass through unchanged.
    const text = this.#partial + chunk.toString('latin1');
    const lastNewline = text.lastIndexOf('\n');
    this.#partial = text.slice(lastNewline + 1);
    if (lastNewline >= 0) this.#emit(text.slice(0, lastNewline + 1));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#partial !== '') this.#emit(this.#partial);
    callback();
  }

  #emit(lines: string): void {
    const kept: string[] = [];
    for (const line of lines.split(/(?<=\n)/)) if (this.#keep(line)) kept.push(line);
    if (kept.length > 0) this.push(Buffer.from(kept.join(''), 'latin1'));
  }

  #keep(lineWithEnd: string): boolean {
    const line = lineWithEnd.endsWith('\n') ? lineWithEnd.slice(0, -1) : lineWithEnd;
    if (this.#inCopy) {
      if (COPY_END.test(line)) this.#inCopy = false;
      return true;
    }
    const atStatementStart = !this.#inString && !this.#inIdentifier && this.#dollarTag === undefined;
    if (atStatementStart) {
      if ((this.#options.owners && OWNER_STATEMENT.test(line)) || (this.#options.privileges && PRIVILEGE_STATEMENT.test(line))) {
        this.dropped++;
        return false;
      }
      if (COPY_START.test(line)) {
        this.#inCopy = true;
        return true;
      }
    }
    this.#scan(line);
    return true;
  }

  /** Follows quoting through one line, so that the next line's start is known to be a statement's or not. */
  #scan(line: string): void {
    for (let index = 0; index < line.length; index++) {
      const char = line[index]!;
      if (this.#dollarTag !== undefined) {
        if (char === '$' && line.startsWith(this.#dollarTag, index)) {
          index += this.#dollarTag.length - 1;
          this.#dollarTag = undefined;
        }
      } else if (this.#inString) {
        if (char === "'") this.#inString = false;
      } else if (this.#inIdentifier) {
        if (char === '"') this.#inIdentifier = false;
      } else if (char === "'") this.#inString = true;
      else if (char === '"') this.#inIdentifier = true;
      else if (char === '-' && line[index + 1] === '-') return;
      // `a$b$` is an identifier, not a dollar quote: one never directly follows an identifier character.
      else if (char === '$' && !/[A-Za-z0-9_$]/.test(line[index - 1] ?? '')) {
        const tag = DOLLAR_TAG.exec(line.slice(index))?.[0];
        if (tag) {
          this.#dollarTag = tag;
          index += tag.length - 1;
        }
      }
    }
  }
}
