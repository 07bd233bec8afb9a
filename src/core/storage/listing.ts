import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import {areaOf} from '../../contracts/storage.js';

export const LIST_PAGE_SIZE = 1000;

function byKey(a: ObjectInfo, b: ObjectInfo): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * The objects of `prefix` (in its area) after `startAfter`, in key order, a page at a time: a
 * storage of any size is read without holding its whole listing. A backend of plugin API 1.2
 * (no listPage) is listed whole once and walked the same way, knowingly.
 */
export async function* listObjects(storage: StorageBackend, options: {readonly prefix?: string; readonly startAfter?: string; readonly pageSize?: number} = {}): AsyncGenerator<ObjectInfo> {
  const prefix = options.prefix ?? '';
  const limit = options.pageSize ?? LIST_PAGE_SIZE;
  if (!storage.listPage) {
    const area = areaOf(prefix);
    const all = (await storage.list(prefix)).filter((object) => object.key.startsWith(prefix) && areaOf(object.key) === area && (options.startAfter === undefined || object.key > options.startAfter));
    yield* all.sort(byKey);
    return;
  }
  let startAfter = options.startAfter;
  for (;;) {
    const page = await storage.listPage({prefix, limit, ...(startAfter === undefined ? {} : {startAfter})});
    for (const object of page.objects) {
      // A backend that returns what it was not asked for must not make us walk back or outside the prefix.
      if (!object.key.startsWith(prefix) || (startAfter !== undefined && object.key <= startAfter)) continue;
      yield object;
    }
    if (page.next === undefined || (startAfter !== undefined && page.next <= startAfter)) return;
    startAfter = page.next;
  }
}

/** Every object of these prefixes, in key order per prefix. */
export async function listAll(storage: StorageBackend, prefixes: readonly string[]): Promise<ObjectInfo[]> {
  const objects: ObjectInfo[] = [];
  for (const prefix of prefixes) for await (const object of listObjects(storage, {prefix})) objects.push(object);
  return objects;
}
