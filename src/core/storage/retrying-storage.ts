import type {StorageBackend} from '../../contracts/storage.js';
import {errnoCode, isSynapseError} from '../errors/index.js';
import {decorateStorage} from './decorate-storage.js';

/**
 * Failures that a second try may not meet: a network file system that lost a handle (ESTALE), a
 * server that was busy or dropped a connection. Not a missing object, a full disk or a refusal,
 * which a retry would only repeat. A backend marks others with `retryable: true` (an S3 503).
 */
const TRANSIENT_CODES = new Set(['ESTALE', 'EAGAIN', 'EBUSY', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT']);

export function isTransient(error: unknown): boolean {
  if (isSynapseError(error)) return false;
  if ((error as {retryable?: unknown} | undefined)?.retryable === true) return true;
  return TRANSIENT_CODES.has(errnoCode(error) ?? '');
}

export interface RetryPolicy {
  /** Pauses before the second, third... attempt; their number is the number of retries. */
  readonly delaysMs: readonly number[];
  /** Told of each retry, for the log. */
  readonly onRetry?: (what: string, error: unknown, attempt: number, attempts: number) => void;
  readonly signal?: AbortSignal;
}

export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [250, 1000];

async function withRetry<T>(what: string, operation: () => Promise<T>, policy: RetryPolicy): Promise<T> {
  const attempts = policy.delaysMs.length + 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= attempts || !isTransient(error) || policy.signal?.aborted) throw error;
      policy.onRetry?.(what, error, attempt + 1, attempts);
      await new Promise((resolve) => setTimeout(resolve, policy.delaysMs[attempt - 1]));
    }
  }
}

/**
 * The backend with its idempotent operations (stat, list, opening a read, delete) tried again after
 * a transient failure, restic style: a wrapper with the backend's own interface. A put is not
 * retried: its body is a stream that has been consumed, and the caller's run is the retry.
 */
export function withRetries(storage: StorageBackend, policy: RetryPolicy): StorageBackend {
  return decorateStorage(storage, (call) => (call.operation === 'put' || call.operation === 'close' ? call.run() : withRetry(call.what, call.run, policy)));
}

/**
 * The backend with every operation written to `log` as it ends: what, how long, and how it went.
 * For DEBUG=1, where an operator wants to see which call a slow or failing storage makes.
 */
export function withOperationLog(storage: StorageBackend, log: (line: string) => void): StorageBackend {
  return decorateStorage(storage, async (call) => {
    const started = Date.now();
    try {
      const value = await call.run();
      log(`storage ${storage.scheme}: ${call.logged}: ${call.describe(value)} (${Date.now() - started} ms)`);
      return value;
    } catch (error) {
      log(`storage ${storage.scheme}: ${call.logged}: failed, ${errnoCode(error) ?? (error as Error).name}: ${(error as Error).message} (${Date.now() - started} ms)`);
      throw error;
    }
  });
}
