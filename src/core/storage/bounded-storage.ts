import {Readable} from 'node:stream';

import type {StorageBackend} from '../../contracts/storage.js';
import {SynapseError, cancelledError} from '../errors/index.js';
import {decorateStorage} from './decorate-storage.js';

export const DEFAULT_STORAGE_TIMEOUT_MS = 300_000;

/**
 * After a cancellation, how long an operation may still finish on its own. A backend that answers
 * settles as it always does (a put aborted by its signal cleans up after itself); only one that
 * does not answer is left behind.
 */
const CANCEL_GRACE_MS = 3000;

export interface OperationBounds {
  /** How long one operation may go without an answer; for a put, counted from the end of its body. */
  readonly timeoutMs: number;
  /** The command's cancellation (Ctrl-C, SIGTERM): an operation that never returns must not hold the command. */
  readonly signal?: AbortSignal;
}

function timedOut(what: string, location: string, timeoutMs: number): SynapseError {
  return new SynapseError('E_STORAGE', {
    message: `unable to ${what} at ${location}: the storage did not answer within ${Number((timeoutMs / 1000).toFixed(1))} s`,
    suggestion:
      'Check that the backup storage is reachable (a network mount that stopped answering, a full or failing disk). If it is only slow, raise SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS. Earlier backups are untouched.',
  });
}

/**
 * Settles with `operation` unless the bounds run out first: the timer (started at once, or when
 * `armTimer` calls back) or the signal. A file system call that never returns (a dead network
 * mount, a path under /proc) keeps its thread, but no longer holds the command, which can then
 * report, clean up and exit.
 */
export function boundOperation<T>(
  operation: () => Promise<T>,
  what: string,
  location: string,
  bounds: OperationBounds,
  armTimer: (start: () => void) => void = (start) => start(),
): Promise<T> {
  const {signal, timeoutMs} = bounds;
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (finish: () => void): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      finish();
    };
    const onAbort = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(
        () => settle(() => reject(cancelledError(what, 'The storage did not answer; what this run left there is removed by the next `backup cleanup`.'))),
        CANCEL_GRACE_MS,
      );
    };
    // Started after the cancellation (the clean-up of a cancelled run, such as releasing the lock):
    // it runs, within the grace period.
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, {once: true});
    armTimer(() => {
      if (settled || timer || signal?.aborted) return;
      timer = setTimeout(() => settle(() => reject(timedOut(what, location, timeoutMs))), timeoutMs);
    });
    let pending: Promise<T>;
    try {
      pending = operation();
    } catch (error) {
      settle(() => reject(error));
      return;
    }
    pending.then(
      (value) => settle(() => resolve(value)),
      (error: unknown) => settle(() => reject(error)),
    );
  });
}

/**
 * A read that stops answering midway (a network mount that died, a server that stopped sending)
 * fails after `timeoutMs` without a byte, instead of holding the command. Only time spent waiting
 * for the storage counts: while the reader holds back (psql busy, a full pipe) the clock stands.
 */
export function boundWhileStreaming(source: Readable, timeoutMs: number, onTimeout: () => Error): Readable {
  let timer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  const wait = (): void => {
    stop();
    timer = setTimeout(() => {
      const error = onTimeout();
      bounded.destroy(error);
    }, timeoutMs);
  };
  const bounded = new Readable({
    read() {
      // The reader wants more: from now on the storage owes an answer.
      wait();
      source.resume();
    },
    destroy(error, callback) {
      stop();
      source.destroy(error ?? undefined);
      callback(error);
    },
  });
  source.on('data', (chunk: Buffer) => {
    if (bounded.push(chunk)) wait();
    else {
      stop();
      source.pause();
    }
  });
  source.once('end', () => {
    stop();
    bounded.push(null);
  });
  source.once('error', (error) => {
    stop();
    bounded.destroy(error);
  });
  source.pause();
  return bounded;
}

/**
 * The backend with every operation bounded in time and by the command's cancellation, restic
 * style: a wrapper with the backend's own interface, so the core neither knows nor cares.
 * A put may take as long as its body does (pg_dump may wait for a lock for hours); only the
 * part after the body has ended (flush, fsync, rename, upload) is timed. A get is timed until it
 * opens and then whenever its stream keeps the reader waiting.
 */
export function withOperationBounds(storage: StorageBackend, bounds: OperationBounds): StorageBackend {
  return decorateStorage(storage, (call) => {
    if (call.operation === 'get') {
      return boundOperation(call.run, call.what, storage.location, bounds).then((stream) =>
        boundWhileStreaming(stream as Readable, bounds.timeoutMs, () => timedOut(call.what.replace(/^open/, 'read'), storage.location, bounds.timeoutMs)),
      ) as Promise<never>;
    }
    const body = call.body;
    if (body) {
      return boundOperation(call.run, call.what, storage.location, bounds, (start) => {
        if (body.readableEnded) start();
        else body.once('end', start);
      });
    }
    return boundOperation(call.run, call.what, storage.location, bounds);
  });
}
