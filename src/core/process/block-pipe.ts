import {execFile} from 'node:child_process';
import {closeSync, constants, openSync} from 'node:fs';
import {mkdtemp, rm} from 'node:fs/promises';
import {Socket} from 'node:net';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {Readable} from 'node:stream';
import {promisify} from 'node:util';

import type {BlockPool} from '../pipeline/block-pool.js';
import {minimalChildEnvironment} from './child-environment.js';

const run = promisify(execFile);

/** What a pipe is grown to: the most an unprivileged process may ask for by default (fs.pipe-max-size). */
export const GROWN_PIPE_BYTES = 1024 * 1024;
/** A read shorter than this means the reader is ahead of the writer: wait before reading again. */
const PACED_READ_BELOW = 256 * 1024;
const PACE_DELAY_MS = 1;
const F_SETPIPE_SZ = 1031;

/**
 * Grows a pipe's buffer with fcntl(F_SETPIPE_SZ), which Node does not expose; perl is part of
 * every Debian and most other systems, and without it the pipe keeps its 64 KiB. It reopens our
 * read end through /proc, so the FIFO's name can be gone already and the writer already writing.
 */
async function growPipe(readFd: number): Promise<boolean> {
  try {
    const ourEnd = `/proc/${process.pid}/fd/${readFd}`;
    await run('perl', ['-e', `open(my $pipe, '+<', $ARGV[0]) or exit 1; fcntl($pipe, ${F_SETPIPE_SZ}, ${GROWN_PIPE_BYTES}) or exit 2;`, ourEnd], {timeout: 5000, env: minimalChildEnvironment()});
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads a pipe straight into pooled blocks and emits each block once it is full (the last one
 * when the writer closes). Node's usual pipe reading allocates a new 64 KiB buffer per read, and
 * a block-compressor would then copy those into blocks again: twice the dump's size in garbage.
 *
 * pg_dump writes 4 KiB at a time, and a reader that is woken for each write spends a CPU-second
 * per gigabyte in the kernel, on a machine whose cores the server and the compressor need. Once
 * paced (see pace()), a short read means the pipe was nearly empty, so the next read waits a
 * millisecond while the grown pipe fills: about 20 times fewer reads for the same bytes.
 */
class PipeBlockReader extends Readable {
  readonly #socket: Socket;
  readonly #pool: BlockPool;
  #paced = false;
  #block: Buffer;
  #filled = 0;
  /** False while the consumer has enough (backpressure); a pacing timer must not resume then. */
  #wanted = true;
  #paceTimer: NodeJS.Timeout | undefined;
  #offered = 0;

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
        buffer: () => {
          this.#offered = this.#block.length - this.#filled;
          return this.#block.subarray(this.#filled);
        },
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
    // Less than the room offered means the pipe is empty now; a short read of an empty pipe means the writer is slower.
    const pace = this.#paced && bytes < this.#offered && bytes < PACED_READ_BELOW;
    this.#filled += bytes;
    if (this.#filled === this.#block.length) {
      const full = this.#block;
      this.#block = this.#pool.acquire();
      this.#filled = 0;
      // false stops reading until _read asks for more: backpressure reaches the writer.
      this.#wanted = this.push(full);
      if (!this.#wanted) return false;
    }
    return pace ? this.#pause() : true;
  }

  /** Paces reads from now on; only for a grown pipe, as pacing a 64 KiB pipe would throttle the writer. */
  pace(): void {
    this.#paced = true;
  }

  #pause(): false {
    this.#paceTimer ??= setTimeout(() => {
      this.#paceTimer = undefined;
      if (this.#wanted) this.#socket.resume();
    }, PACE_DELAY_MS);
    return false;
  }

  override _read(): void {
    this.#wanted = true;
    if (this.#paceTimer === undefined) this.#socket.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#paceTimer);
    this.#socket.destroy();
    callback(error);
  }
}

export interface BlockPipe {
  /** The write end, to hand to a child as its stdout; call closeWriteEnd() once the child has it. */
  readonly writeFd: number;
  /** Whether the pipe was grown to GROWN_PIPE_BYTES (reads are paced from then on); else it keeps the usual 64 KiB. */
  readonly grown: Promise<boolean>;
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
    await run('mkfifo', ['-m', '600', fifo], {env: minimalChildEnvironment()});
    // Non-blocking so opening the read end does not wait for a writer; the write end then opens at once.
    const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    let writeFd: number;
    try {
      writeFd = openSync(fifo, constants.O_WRONLY);
    } catch (error) {
      closeSync(readFd);
      throw error;
    }
    const output = new PipeBlockReader(readFd, pool);
    // Not awaited: the child can start writing meanwhile.
    const grown = growPipe(readFd).then((done) => {
      if (done) output.pace();
      return done;
    });
    let writeOpen = true;
    return {
      writeFd,
      grown,
      output,
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
