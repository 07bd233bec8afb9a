import type {GetOptions, StorageBackend} from '../../contracts/storage.js';
import {errnoCode, isSynapseError} from '../errors/index.js';

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
  const retried = <T>(what: string, operation: () => Promise<T>): Promise<T> => withRetry(what, operation, policy);
  return {
    scheme: storage.scheme,
    location: storage.location,
    capabilities: storage.capabilities,
    put: (key, body, options) => storage.put(key, body, options),
    get: (key: string, options?: GetOptions) => retried(`open '${key}'`, () => storage.get(key, options)),
    stat: (key: string) => retried(`look up '${key}'`, () => storage.stat(key)),
    list: (prefix?: string) => retried('list the backups', () => storage.list(prefix)),
    delete: (key: string) => retried(`delete '${key}'`, () => storage.delete(key)),
    ...(storage.space ? {space: () => retried('measure the free space', () => storage.space!())} : {}),
    ...(storage.abortStaleUploads ? {abortStaleUploads: (olderThan: Date, options?: {readonly dryRun?: boolean}) => retried('abort unfinished uploads', () => storage.abortStaleUploads!(olderThan, options))} : {}),
    ...(storage.close ? {close: () => storage.close!()} : {}),
  };
}

/**
 * The backend with every operation written to `log` as it ends: what, how long, and how it went.
 * For DEBUG=1, where an operator wants to see which call a slow or failing storage makes.
 */
export function withOperationLog(storage: StorageBackend, log: (line: string) => void): StorageBackend {
  const logged = async <T>(what: string, operation: () => Promise<T>, describe: (value: T) => string = () => 'ok'): Promise<T> => {
    const started = Date.now();
    try {
      const value = await operation();
      log(`storage ${storage.scheme}: ${what}: ${describe(value)} (${Date.now() - started} ms)`);
      return value;
    } catch (error) {
      log(`storage ${storage.scheme}: ${what}: failed, ${errnoCode(error) ?? (error as Error).name}: ${(error as Error).message} (${Date.now() - started} ms)`);
      throw error;
    }
  };
  return {
    scheme: storage.scheme,
    location: storage.location,
    capabilities: storage.capabilities,
    put: (key, body, options) => logged(`put '${key}'`, () => storage.put(key, body, options), (info) => `${info.size} bytes`),
    get: (key, options) => logged(`get '${key}'`, () => storage.get(key, options)),
    stat: (key) => logged(`stat '${key}'`, () => storage.stat(key), (info) => (info ? `${info.size} bytes` : 'absent')),
    list: (prefix) => logged(`list '${prefix ?? ''}'`, () => storage.list(prefix), (objects) => `${objects.length} objects`),
    delete: (key) => logged(`delete '${key}'`, () => storage.delete(key)),
    ...(storage.space ? {space: () => logged('space', () => storage.space!(), (space) => (space ? `${space.freeBytes} of ${space.totalBytes} bytes free` : 'unknown'))} : {}),
    ...(storage.abortStaleUploads ? {abortStaleUploads: (olderThan: Date, options?: {readonly dryRun?: boolean}) => logged('abort stale uploads', () => storage.abortStaleUploads!(olderThan, options), (aborted) => `${aborted.length} uploads`)} : {}),
    ...(storage.close ? {close: () => logged('close', () => storage.close!())} : {}),
  };
}
