import type {Duplex, Readable, Writable} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import type {StageName} from '../events/index.js';
import {FailureRecorder, type RecordedFailure} from './failure-recorder.js';

/** One stream of a chain, with the stage a failure of it is reported under. */
export interface ChainLink {
  readonly stage: StageName;
  readonly stream: Readable | Writable | Duplex;
}

/** Work that runs beside the streams and decides with them: a child's exit, a storage upload. */
export interface ChainTask {
  readonly stage: StageName;
  readonly promise: Promise<unknown>;
}

/** The first real failure of a chain, by stage; `cancelled` when the caller's signal stopped it. */
export class StreamChainFailure extends Error {
  readonly stage: StageName;
  readonly error: unknown;
  readonly cancelled: boolean;

  constructor(failure: RecordedFailure, cancelled: boolean) {
    super(`${failure.stage} failed: ${(failure.error as Error)?.message ?? String(failure.error)}`);
    this.name = 'StreamChainFailure';
    this.stage = failure.stage;
    this.error = failure.error;
    this.cancelled = cancelled;
  }
}

/**
 * Runs streams as one pipeline together with the tasks that decide beside them, for backup,
 * restore and verify alike. It succeeds only when every stream finished and every task succeeded.
 * Otherwise it aborts `signal` (children and uploads started with it stop), waits for everything
 * to settle, and rejects with the first real failure: when one stage fails, the others fail too
 * (premature close, EPIPE, a child killed by SIGPIPE), and only the first says what went wrong.
 */
export class StreamChain {
  readonly #controller = new AbortController();
  readonly #outer: AbortSignal | undefined;
  readonly #abortFromOutside = (): void => this.#controller.abort();

  constructor(outer?: AbortSignal) {
    this.#outer = outer;
    if (outer?.aborted) this.#controller.abort();
    outer?.addEventListener('abort', this.#abortFromOutside, {once: true});
  }

  /** Aborted when the caller's signal is, or when any stage of the chain fails. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Resolves with the tasks' values, in order; rejects with a StreamChainFailure. */
  async run(links: readonly ChainLink[], tasks: readonly ChainTask[] = []): Promise<unknown[]> {
    const failures = new FailureRecorder();
    for (const {stage, stream} of links) stream.on('error', (error: unknown) => failures.record(stage, error));
    try {
      const flowing = pipeline(links.map((link) => link.stream as NodeJS.ReadWriteStream), {signal: this.signal});
      const settled = await Promise.allSettled([flowing, ...tasks.map((task) => failures.watch(task.stage, task.promise))]);
      if (settled.every((outcome) => outcome.status === 'fulfilled')) return settled.slice(1).map((outcome) => (outcome as PromiseFulfilledResult<unknown>).value);
      this.#controller.abort();
      const rejected = settled.findIndex((outcome) => outcome.status === 'rejected');
      const first = failures.first ?? {stage: rejected === 0 ? links[0]!.stage : tasks[rejected - 1]!.stage, error: (settled[rejected] as PromiseRejectedResult).reason};
      throw new StreamChainFailure(first, this.#outer?.aborted === true);
    } finally {
      this.#outer?.removeEventListener('abort', this.#abortFromOutside);
    }
  }
}
