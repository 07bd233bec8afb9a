import type {StorageBackend} from '../../src/contracts/storage.js';

type Operations = Pick<StorageBackend, 'put' | 'get' | 'stat' | 'list' | 'delete'>;

/** The same storage with some operations replaced: to record calls, delay them, or kill the process at one. */
export function wrapStorage(inner: StorageBackend, overrides: Partial<Operations>): StorageBackend {
  return {
    scheme: inner.scheme,
    location: inner.location,
    capabilities: inner.capabilities,
    put: (key, body, options) => inner.put(key, body, options),
    get: (key, options) => inner.get(key, options),
    stat: (key) => inner.stat(key),
    list: (prefix) => inner.list(prefix),
    delete: (key) => inner.delete(key),
    ...overrides,
  };
}
