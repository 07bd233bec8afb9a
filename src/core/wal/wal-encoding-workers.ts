import {statSync} from 'node:fs';
import {availableParallelism} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {Worker} from 'node:worker_threads';

import type {CompressionSettings} from '../pipeline/compression.js';
import {IN_MEMORY_WAL_FILE_BYTES, WalCodecFailure, type EncodedWalFile} from './archived-file.js';
import type {EncodingAnswer, EncodingJob} from './wal-encoding-protocol.js';

/**
 * A backlog of at least this many files is read and compressed on worker threads, one per
 * core; a shorter one, the usual single file, on the main thread and the threadpool, as starting
 * the workers (a Node environment each) costs more than they save on a few files.
 */
export const ENCODING_WORKERS_FROM = 8;

/**
 * One worker per core, up to eight: READ_AHEAD_BYTES keeps eight 16 MiB segments in work at once,
 * and each worker is a Node environment of its own (tens of megabytes, tens of milliseconds to start).
 */
export function encodingThreads(): number {
  return Math.min(8, availableParallelism());
}

/** The worker's module beside this one: .js once built, .ts where the tests run the sources. */
const WORKER_SCRIPT = new URL(`./wal-encoding-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/**
 * How much WAL (plaintext) is encoded ahead of a run's asking at most: the results wait in memory,
 * compressed, until taken. Eight 16 MiB segments.
 */
export const READ_AHEAD_BYTES = 128 * 1024 * 1024;

/** A prefetched file's worker stopped before it finished: whoever asks for the file encodes it with their fallback. */
const WORKER_LOST = new Error('the WAL encoding worker stopped');

interface PendingJob {
  readonly job: EncodingJob;
  readonly fallback: () => Promise<EncodedWalFile>;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (encoded: EncodedWalFile) => void;
  readonly reject: (error: unknown) => void;
}

interface Lane {
  readonly worker: Worker;
  busy: PendingJob | undefined;
}

/**
 * Reads and compresses WAL files on worker threads, each a whole file at a time with
 * blocking calls on its own core, the way pgBackRest's asynchronous archiving runs one process per
 * core. On the main thread the hashing shared one thread with the encryption, the garbage and the
 * storing of every file, and a push of a backlog waited on that thread: 65 segments took 2.9 s and
 * about 5.8 CPU-seconds, where two workers do the same in about 1.5 s and 2.9 (README, Keeping up).
 *
 * The workers produce what encodeWalFile does (the same size or digest, one frame or member per block,
 * decoded by the same reader), so encryption, the tag and storing are unchanged. A worker that cannot start or stops (out of memory, a thread
 * limit) hands its file and those after it to `fallback`, the main thread's encoder, once said in a
 * warning: a push never fails because a worker did.
 */
export class WalEncodingWorkers {
  readonly #lanes: Lane[] = [];
  readonly #queue: PendingJob[] = [];
  readonly #compression: CompressionSettings;
  /** Files encoded before anyone asked (see readAhead), by path, each taken once, and their size. */
  readonly #prefetched = new Map<string, {readonly result: Promise<EncodedWalFile>; readonly bytes: number}>();
  /** The files still to encode ahead, in order, and the size of those encoded ahead and not taken. */
  #ahead: string[] = [];
  #aheadBytes = 0;
  #onWarning: ((message: string) => void) | undefined;
  /** Said before anyone listened (workers started before the CLI loaded), for the one who adopts them. */
  readonly #unheard: string[] = [];
  #keepAlive: boolean;
  readonly #script: URL;
  #nextId = 1;
  #closed = false;
  #warned = false;

  /**
   * `keepAlive: false` for workers started before anyone needs them (see startEarlyEncoding): they
   * do not keep the process alive until adopted, so a command that never asks for them ends.
   */
  constructor(options: {threads: number; compression: CompressionSettings; onWarning?: (message: string) => void; script?: URL; keepAlive?: boolean}) {
    this.#onWarning = options.onWarning;
    this.#compression = options.compression;
    this.#keepAlive = options.keepAlive ?? true;
    this.#script = options.script ?? WORKER_SCRIPT;
    this.grow(options.threads);
  }

  /** Starts workers until `threads` run (at least one); a pool that lost one does not start it again. */
  grow(threads: number): this {
    for (let started = this.#lanes.length; started < Math.max(1, threads) && !this.#closed && !this.#warned; started++) this.#start(this.#script);
    this.#topUp();
    return this;
  }

  get compression(): CompressionSettings {
    return this.#compression;
  }

  /** The files encoded ahead and not taken yet, in the order they were given. */
  get prefetchedFiles(): string[] {
    return [...this.#prefetched.keys()];
  }

  /** How many workers are running. */
  get running(): number {
    return this.#lanes.length;
  }

  /** Takes the workers into a run: its warnings (and any said before) go to `onWarning`, and they keep the process alive until closed. */
  adopt(onWarning: (message: string) => void): this {
    this.#onWarning = onWarning;
    for (const message of this.#unheard.splice(0)) onWarning(message);
    this.#keepAlive = true;
    for (const lane of this.#lanes) lane.worker.ref();
    return this;
  }

  /**
   * The files the run will ask for, in order: the workers encode them ahead of the asking, as many
   * at a time as READ_AHEAD_BYTES of them (at least one), so that they never wait for a run that is
   * busy storing. encode() of one of them takes its result (once) and makes room for the next.
   * A file encoded ahead that is not in a newer list is dropped. A file a worker could not finish is
   * encoded by the fallback of whoever asks for it.
   */
  readAhead(files: readonly string[]): void {
    const wanted = new Set(files);
    for (const [file, entry] of this.#prefetched) {
      if (wanted.has(file)) continue;
      this.#prefetched.delete(file);
      this.#aheadBytes -= entry.bytes;
    }
    this.#ahead = files.filter((file) => !this.#prefetched.has(file));
    this.#topUp();
  }

  #topUp(): void {
    while (this.#ahead.length > 0 && !this.#closed && this.#lanes.length > 0) {
      const file = this.#ahead[0]!;
      let bytes: number;
      try {
        bytes = statSync(file).size;
      } catch {
        // Said by whoever asks for it, when their own reading fails.
        bytes = 0;
      }
      if (this.#prefetched.size > 0 && this.#aheadBytes + bytes > READ_AHEAD_BYTES) return;
      this.#ahead.shift();
      const result = this.encode(file, () => Promise.reject(WORKER_LOST));
      result.catch(() => {});
      this.#prefetched.set(file, {result, bytes});
      this.#aheadBytes += bytes;
    }
  }

  /** Encodes one file on a worker, or with `fallback` where none runs; rejects with a WalCodecFailure as encodeWalFile does. */
  encode(file: string, fallback: () => Promise<EncodedWalFile>, options: {signal?: AbortSignal; inMemoryLimit?: number} = {}): Promise<EncodedWalFile> {
    if (options.signal?.aborted) return Promise.reject(new WalCodecFailure('read', options.signal.reason ?? new Error('cancelled')));
    const early = this.#prefetched.get(file);
    if (early && options.inMemoryLimit === undefined) {
      this.#prefetched.delete(file);
      this.#aheadBytes -= early.bytes;
      this.#topUp();
      return early.result.catch((error: unknown) => (error === WORKER_LOST ? fallback() : Promise.reject(error)));
    }
    if (this.#closed || this.#lanes.length === 0) return fallback();
    return new Promise<EncodedWalFile>((resolve, reject) => {
      this.#queue.push({job: {id: this.#nextId++, path: file, compression: this.#compression, inMemoryLimit: options.inMemoryLimit ?? IN_MEMORY_WAL_FILE_BYTES}, fallback, signal: options.signal, resolve, reject});
      this.#dispatch();
    });
  }

  /** Stops the workers; a file still waiting for one (a push that was cancelled) fails. */
  async close(): Promise<void> {
    this.#closed = true;
    const lanes = this.#lanes.splice(0);
    const closed = new WalCodecFailure('compress', new Error('the WAL encoding workers were stopped'));
    for (const pending of [...lanes.flatMap((lane) => (lane.busy ? [lane.busy] : [])), ...this.#queue.splice(0)]) pending.reject(closed);
    this.#prefetched.clear();
    this.#ahead = [];
    await Promise.all(lanes.map((lane) => lane.worker.terminate()));
  }

  #start(script: URL): void {
    let worker: Worker;
    try {
      worker = new Worker(script, {stdout: false, stderr: false});
    } catch (error) {
      this.#lost(undefined, error);
      return;
    }
    const lane: Lane = {worker, busy: undefined};
    this.#lanes.push(lane);
    worker.on('message', (answer: EncodingAnswer) => this.#answered(lane, answer));
    worker.on('error', (error) => this.#lost(lane, error));
    worker.on('exit', (code) => this.#lost(lane, new Error(`the worker exited with status ${code}`)));
    // After the listeners: a 'message' listener refs the worker again.
    if (!this.#keepAlive) worker.unref();
  }

  #dispatch(): void {
    for (const lane of this.#lanes) {
      if (lane.busy || this.#queue.length === 0) continue;
      lane.busy = this.#queue.shift()!;
      lane.worker.postMessage(lane.busy.job);
    }
  }

  #answered(lane: Lane, answer: EncodingAnswer): void {
    const pending = lane.busy;
    if (!pending || pending.job.id !== answer.id) return;
    lane.busy = undefined;
    if (pending.signal?.aborted) {
      pending.reject(new WalCodecFailure('read', pending.signal.reason ?? new Error('cancelled')));
    } else if ('failure' in answer) {
      const {step, message, code} = answer.failure;
      pending.reject(new WalCodecFailure(step, Object.assign(new Error(message), code ? {code} : {})));
    } else {
      // Moved, not copied: it arrives as a plain Uint8Array over the worker's own memory.
      const {path: file} = pending.job;
      pending.resolve(
        'compressed' in answer
          ? {path: file, bytes: answer.bytes, compressed: [Buffer.from(answer.compressed.buffer, answer.compressed.byteOffset, answer.compressed.byteLength)]}
          : {path: file, bytes: answer.bytes, sha256: answer.sha256},
      );
    }
    this.#dispatch();
  }

  /** A worker that failed or stopped: its file and, when none is left, every waiting one go to the fallback. */
  #lost(lane: Lane | undefined, error: unknown): void {
    if (lane) {
      const index = this.#lanes.indexOf(lane);
      if (index < 0) return;
      this.#lanes.splice(index, 1);
      if (lane.busy) this.#runFallback(lane.busy);
      lane.busy = undefined;
    }
    if (this.#closed) return;
    if (!this.#warned) {
      this.#warned = true;
      const message = `a WAL encoding worker stopped (${(error as Error)?.message ?? String(error)}); its files are encoded on the main thread`;
      if (this.#onWarning) this.#onWarning(message);
      else this.#unheard.push(message);
    }
    if (this.#lanes.length === 0) this.#drainToFallback();
    else this.#dispatch();
  }

  #drainToFallback(): void {
    for (const pending of this.#queue.splice(0)) this.#runFallback(pending);
  }

  #runFallback(pending: PendingJob): void {
    pending.fallback().then(pending.resolve, pending.reject);
  }
}

/**
 * Workers started before the CLI loads (bin/run.js, for a push with a backlog): loading keeps one
 * core busy for about half a second and leaves the other idle, where they read and compress the
 * first files. One per process; the push adopts them where its settings name the same compression.
 */
let earlyEncoders: WalEncodingWorkers | undefined;

export function startEarlyEncoding(options: {compression: CompressionSettings; files: readonly string[]}): void {
  if (earlyEncoders) return;
  // One: the loading has the other core, and a second worker starting beside it slowed both.
  earlyEncoders = new WalEncodingWorkers({threads: 1, compression: options.compression, keepAlive: false});
  earlyEncoders.readAhead(options.files);
}

/**
 * The early workers for a run with this compression, adopted (see WalEncodingWorkers.adopt), or
 * undefined where none were started or they compress otherwise (those are stopped: what they
 * made is not what this run stores).
 */
export function adoptEarlyEncoders(compression: CompressionSettings, onWarning: (message: string) => void, threads: number): WalEncodingWorkers | undefined {
  const early = earlyEncoders;
  earlyEncoders = undefined;
  if (!early) return undefined;
  if (early.compression.algorithm === compression.algorithm && early.compression.level === compression.level) return early.adopt(onWarning).grow(threads);
  void early.close();
  return undefined;
}
