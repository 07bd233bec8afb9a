import {mkdir, readdir} from 'node:fs/promises';
import path from 'node:path';

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

/** What the local directory backend calls a name too long for its area's own directory (its FAN_OUT_LENGTH). */
const FAN_OUT_LENGTH = 16;

/**
 * The file in which a local directory location (BACKUP_DIR, a mount) keeps the object `wal/<name>`:
 * in the fan-out directory `wal/~<first 16 characters>/` for a long name, as the backend writes it.
 */
export function walFile(location: string, name: string): string {
  return name.length > FAN_OUT_LENGTH ? path.join(location, 'wal', `~${name.slice(0, FAN_OUT_LENGTH)}`, name) : path.join(location, 'wal', name);
}

/** The names of the files of a local directory location's WAL area, its fan-out directories included (archive.json too), sorted; none where there is no area. */
export async function walFileNames(location: string): Promise<string[]> {
  const area = path.join(location, 'wal');
  const entries = await readdir(area, {withFileTypes: true}).catch(() => []);
  const names: string[] = [];
  for (const entry of entries) {
    if (entry.isFile()) names.push(entry.name);
    else if (entry.isDirectory() && entry.name.startsWith('~')) names.push(...(await readdir(path.join(area, entry.name))));
  }
  return names.sort();
}

/** walFile(), for a file a test plants: its fan-out directory is created if it is not there yet, as the backend creates it (0700). */
export async function plantedWalFile(location: string, name: string): Promise<string> {
  const file = walFile(location, name);
  await mkdir(path.dirname(file), {recursive: true, mode: 0o700});
  return file;
}
