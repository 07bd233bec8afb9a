/**
 * Reusable fixed-size buffers for the dump's hot path. Fresh buffers for every megabyte of a
 * gigabyte dump make V8 collect garbage dozens of times (and each collection walks the whole CLI's
 * heap); lending the same few blocks round keeps that work, and the process's memory, flat.
 *
 * A block is lent by acquire() and comes back through release() once nothing reads it any more;
 * releasing a buffer the pool did not lend, or releasing twice, is ignored, so a stray release can
 * never hand one block to two users.
 */
export class BlockPool {
  readonly blockSize: number;
  readonly #spare: Buffer[] = [];
  readonly #lent = new Set<ArrayBufferLike>();
  readonly #keepSpare: number;

  constructor(blockSize: number, keepSpare = 8) {
    if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
    this.blockSize = blockSize;
    this.#keepSpare = keepSpare;
  }

  acquire(): Buffer {
    // allocUnsafeSlow: a block of its own, never a slice of Node's shared small-buffer pool.
    const block = this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.blockSize);
    this.#lent.add(block.buffer);
    return block;
  }

  /** Takes back the block `view` (or any part of it) belongs to. */
  release(view: Buffer): void {
    if (!this.#lent.delete(view.buffer)) return;
    if (this.#spare.length < this.#keepSpare) this.#spare.push(Buffer.from(view.buffer, 0, this.blockSize));
  }

  get lentCount(): number {
    return this.#lent.size;
  }
}
