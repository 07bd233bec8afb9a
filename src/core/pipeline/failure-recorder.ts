import {SynapseError, errnoCode} from '../errors/index.js';
import type {StageName} from '../events/index.js';

// Errors that only say "an earlier failure tore the pipeline down".
const CONSEQUENTIAL = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR', 'EPIPE', 'ERR_STREAM_DESTROYED', 'ECONNRESET']);

function isConsequential(error: unknown): boolean {
  if (CONSEQUENTIAL.has(errnoCode(error) ?? '') || (error as Error)?.name === 'AbortError') return true;
  // A child stopped because we cancelled it, or because its output pipe was torn down.
  return error instanceof SynapseError && (error.code === 'E_CANCELLED' || error.details.signal === 'SIGPIPE');
}

export interface RecordedFailure {
  readonly stage: StageName;
  readonly error: unknown;
}

/**
 * Remembers which stage failed first. When one stage of a stream pipeline fails, every other stage
 * fails too (premature close, EPIPE, a child killed by SIGPIPE); the first real failure is the
 * one worth reporting.
 */
export class FailureRecorder {
  #first: RecordedFailure | undefined;

  record(stage: StageName, error: unknown): void {
    if (this.#first || isConsequential(error)) return;
    this.#first = {stage, error};
  }

  /** Records failures of `promise` under `stage`, returning the promise unchanged. */
  watch<T>(stage: StageName, promise: Promise<T>): Promise<T> {
    promise.catch((error: unknown) => this.record(stage, error));
    return promise;
  }

  get first(): RecordedFailure | undefined {
    return this.#first;
  }
}
