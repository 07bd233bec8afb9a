import type {Readable} from 'node:stream';

import type {DeleteOptions, GetOptions, ListOptions, ObjectInfo, ObjectPage, PutOptions, StorageBackend} from '../../contracts/storage.js';

export type StorageOperation = 'put' | 'get' | 'stat' | 'list' | 'listPage' | 'delete' | 'space' | 'abortStaleUploads' | 'close';

export interface StorageCall<T> {
  readonly operation: StorageOperation;
  /** For messages: 'list the backups', "look up 'x'". */
  readonly what: string;
  /** For the debug log: "list 'backup_'", "stat 'x'". */
  readonly logged: string;
  readonly run: () => Promise<T>;
  /** A put's body: the bounds time a put from its end. */
  readonly body?: Readable;
  /** The outcome in a few words, for the debug log. */
  readonly describe: (value: T) => string;
}

export type AroundStorageCall = <T>(call: StorageCall<T>) => Promise<T>;

const ok = (): string => 'ok';

/**
 * The backend with every operation passed through `around`: how the bounds, the retries and the
 * debug log each wrap a backend with its own interface (restic style) without each restating it,
 * and without one of them forgetting an operation the contract gained. Optional operations stay
 * absent where the backend has none, so the core still sees what the backend can do.
 */
export function decorateStorage(storage: StorageBackend, around: AroundStorageCall): StorageBackend {
  const {listPage, space, abortStaleUploads, close} = storage;
  return {
    scheme: storage.scheme,
    location: storage.location,
    capabilities: storage.capabilities,
    put: (key: string, body: Readable, options?: PutOptions) =>
      around<ObjectInfo>({operation: 'put', what: `store '${key}'`, logged: `put '${key}'`, body, run: () => storage.put(key, body, options), describe: (info) => `${info.size} bytes`}),
    get: (key: string, options?: GetOptions) => around<Readable>({operation: 'get', what: `open '${key}'`, logged: `get '${key}'`, run: () => storage.get(key, options), describe: ok}),
    stat: (key: string) =>
      around<ObjectInfo | undefined>({operation: 'stat', what: `look up '${key}'`, logged: `stat '${key}'`, run: () => storage.stat(key), describe: (info) => (info ? `${info.size} bytes` : 'absent')}),
    list: (prefix?: string) =>
      around<ObjectInfo[]>({operation: 'list', what: 'list the backups', logged: `list '${prefix ?? ''}'`, run: () => storage.list(prefix), describe: (objects) => `${objects.length} objects`}),
    ...(listPage
      ? {
          listPage: (options?: ListOptions) =>
            around<ObjectPage>({
              operation: 'listPage',
              what: 'list the backups',
              logged: `list '${options?.prefix ?? ''}'${options?.startAfter === undefined ? '' : ` after '${options.startAfter}'`}`,
              run: () => listPage.call(storage, options),
              describe: (page) => `${page.objects.length} objects${page.next === undefined ? '' : ', more to come'}`,
            }),
        }
      : {}),
    delete: (key: string, options?: DeleteOptions) =>
      around<void>({operation: 'delete', what: `delete '${key}'`, logged: `delete '${key}'${options?.ifMatch === undefined ? '' : ` if still ${options.ifMatch}`}`, run: () => storage.delete(key, options), describe: ok}),
    ...(space
      ? {
          space: () =>
            around({operation: 'space', what: 'measure the free space', logged: 'space', run: () => space.call(storage), describe: (free) => (free ? `${free.freeBytes} of ${free.totalBytes} bytes free` : 'unknown')}),
        }
      : {}),
    ...(abortStaleUploads
      ? {
          abortStaleUploads: (olderThan: Date, options?: {readonly dryRun?: boolean}) =>
            around<string[]>({operation: 'abortStaleUploads', what: 'abort unfinished uploads', logged: 'abort stale uploads', run: () => abortStaleUploads.call(storage, olderThan, options), describe: (aborted) => `${aborted.length} uploads`}),
        }
      : {}),
    ...(close ? {close: () => around<void>({operation: 'close', what: 'close the storage', logged: 'close', run: () => close.call(storage), describe: ok})} : {}),
  };
}
