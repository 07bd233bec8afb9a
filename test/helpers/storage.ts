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
    ...(inner.listPage ? {listPage: (options) => inner.listPage!(options)} : {}),
    delete: (key, options) => inner.delete(key, options),
    ...overrides,
  };
}

const notUsedHere = (): never => {
  throw new Error('not used here');
};

/** A backend of plugin API 1.2 for unit tests: every operation refuses unless given. */
export function tableBackend(operations: Partial<StorageBackend> = {}): StorageBackend {
  return {
    scheme: 'table',
    location: 'table',
    capabilities: {atomicPut: true, conditionalPut: true, rangeReads: true},
    put: notUsedHere,
    get: notUsedHere,
    stat: notUsedHere,
    list: notUsedHere,
    delete: notUsedHere,
    ...operations,
  };
}
