import {execFile} from 'node:child_process';
import {closeSync, constants, openSync} from 'node:fs';
import {mkdtemp, rm} from 'node:fs/promises';
import {Socket} from 'node:net';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {Readable} from 'node:stream';
import {promisify} from 'node:util';

import type {BlockPool} from '../pipeline/block-pool.js';

const run = promisify(execFile);

/**
 * Reads a pipe straight into pooled blocks and emits each block once it is full (the last one
 * when the writer closes). Node's usual pipe reading allocates a new 64 KiB buffer per read, and
 * a block-compressor would then copy those into blocks again: twice the dump's size in garbage.
 */
class PipeBlockReader extends Readable {
  readonly #socket: Socket;
  readonly #pool: BlockPool;
  #block: Buffer;
  #filled = 0;

  constructor(fd: number, pool: BlockPool) {
    // Room for one finished block while the next fills.
    super({highWaterMark: pool.blockSize});
    this.#pool = pool;
    this.#block = pool.acquire();
    this.#socket = new Socket({
      fd,
      readable: true,
      writable: false,
      onread: {
        // Each read lands in the free part of the current block.
        buffer: () => this.#block.subarray(this.#filled),
        callback: (bytes: number) => this.#onRead(bytes),
      },
    });
    this.#socket.once('end', () => {
      if (this.#filled > 0) this.push(this.#block.subarray(0, this.#filled));
      else this.#pool.release(this.#block);
      this.push(null);
    });
    this.#socket.once('error', (error) => this.destroy(error));
  }

  #onRead(bytes: number): boolean {
    this.#filled += bytes;
    if (this.#filled < this.#block.length) return true;
    const full = this.#block;
    this.#block = this.#pool.acquire();
    this.#filled = 0;
    // false stops reading until _read asks for more: backpressure reaches the writer.
    return this.push(full);
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.destroy();
    callback(error);
  }
}

export interface BlockPipe {
  /** The write end, to hand to a child as its stdout; call closeWriteEnd() once the child has it. */
  readonly writeFd: number;
  readonly output: Readable;
  closeWriteEnd(): void;
}

/**
 * A pipe whose read end fills pooled blocks. Made from a FIFO that is unlinked as soon as both
 * ends are open, so nothing is left on disk even if the process dies. Returns undefined where
 * FIFOs cannot be made (no mkfifo): the caller then uses an ordinary pipe.
 */
export async function openBlockPipe(pool: BlockPool): Promise<BlockPipe | undefined> {
  let directory: string | undefined;
  try {
    directory = await mkdtemp(path.join(tmpdir(), 'synapse-backup-'));
    const fifo = path.join(directory, 'dump');
    await run('mkfifo', ['-m', '600', fifo]);
    // Non-blocking so opening the read end does not wait for a writer; the write end then opens at once.
    const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    let writeFd: number;
    try {
      writeFd = openSync(fifo, constants.O_WRONLY);
    } catch (error) {
      closeSync(readFd);
      throw error;
    }
    let writeOpen = true;
    return {
      writeFd,
      output: new PipeBlockReader(readFd, pool),
      closeWriteEnd() {
        // Until the parent's copy is closed, the reader would never see end-of-file.
        if (writeOpen) closeSync(writeFd);
        writeOpen = false;
      },
    };
  } catch {
    return undefined;
  } finally {
    if (directory) await rm(directory, {recursive: true, force: true}).catch(() => {});
  }
}
