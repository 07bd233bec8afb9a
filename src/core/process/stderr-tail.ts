import type {Readable} from 'node:stream';

/**
 * Keeps the last `limit` bytes a child process wrote to stderr, so that a failure can show the
 * end of the story without holding an unbounded amount of output in memory.
 */
export class StderrTail {
  #chunks: Buffer[] = [];
  #size = 0;
  readonly #limit: number;

  constructor(limit = 8192) {
    this.#limit = limit;
  }

  attach(stream: Readable | null | undefined): this {
    stream?.on('data', (chunk: Buffer) => this.push(chunk));
    return this;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#size - (this.#chunks[0]?.length ?? 0) >= this.#limit && this.#chunks.length > 1) {
      this.#size -= this.#chunks.shift()!.length;
    }
  }

  /** The last lines written, at most `maxLines`, trimmed. */
  text(maxLines = 20): string {
    const text = Buffer.concat(this.#chunks).toString('utf8');
    const lines = text.split('\n').map((line) => line.trimEnd()).filter(Boolean);
    return lines.slice(-maxLines).join('\n');
  }
}
