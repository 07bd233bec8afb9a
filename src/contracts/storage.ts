import type {Readable} from 'node:stream';

/**
 * What a storage backend promises beyond the basic operations. The core reads these instead of
 * guessing from the backend's name, the way restic's backends declare their properties.
 */
export interface StorageCapabilities {
  /** put() never exposes a partially written object under its final key. */
  readonly atomicPut: boolean;
  /** put() with `ifNotExists` refuses atomically to replace an existing object. */
  readonly conditionalPut: boolean;
  /** get() honours `offset` and `length` without reading the bytes before them. */
  readonly rangeReads: boolean;
  /**
   * Optional (plugin API 1.3): put() and delete() with `ifMatch` compare and act in one atomic
   * step, as S3's If-Match does. Absent or false, they still honour `ifMatch`, but by a look and
   * then the act, which a concurrent writer can slip between; the core then adds what it can
   * (a host-wide mutex) and says what remains.
   */
  readonly conditionalReplace?: boolean;
}

export interface StorageSpace {
  /** Bytes this process could still write there (what `df` shows as available). */
  readonly freeBytes: number;
  readonly totalBytes: number;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  readonly modifiedAt: Date;
  /**
   * The version of the object, for conditional deletes and replaces (`ifMatch`): S3's entity tag,
   * a file's inode, modification time and size. A replaced object has another one; the same bytes
   * stored again may keep it (S3). Not a checksum of the content (a multipart or SSE-KMS ETag is
   * not an MD5): the metadata's SHA-256 is. Optional for backends of plugin API 1.2 and older.
   */
  readonly etag?: string;
  /**
   * Optional: until when the store refuses to delete or change this object (S3 Object Lock
   * retention); stat() reports it where the backend can tell. Retention keeps such a backup, with
   * the reason, rather than fail on it.
   */
  readonly retainedUntil?: Date;
}

export interface PutOptions {
  /** Fail with code 'EEXIST' instead of replacing an object that already has this key. */
  readonly ifNotExists?: boolean;
  /** Create the object readable by its owner only (0600 on a file system). */
  readonly private?: boolean;
  /**
   * A backup or its metadata: a backend that can keep objects immutable for a while (S3 Object
   * Lock) applies its retention to it. Never set for what must stay deletable (locks, markers, journal).
   */
  readonly immutable?: boolean;
  /**
   * Optional (plugin API 1.3): replace only the version with this etag; an object that is missing
   * or of another version is left as it is and the put rejects with code 'ECHANGED'.
   */
  readonly ifMatch?: string;
  readonly signal?: AbortSignal;
}

export interface DeleteOptions {
  /**
   * Optional (plugin API 1.3): delete only the version with this etag; another version is left
   * and the delete rejects with code 'ECHANGED'. A missing object is not an error, as ever.
   */
  readonly ifMatch?: string;
}

export interface ListOptions {
  /** Keys that start with this, in the area it names (see the StorageBackend's note on areas). */
  readonly prefix?: string;
  /** Only keys after this one, in code point order: where the previous page ended. */
  readonly startAfter?: string;
  /** At most this many objects (the backend may return fewer, and still a `next`). */
  readonly limit?: number;
}

export interface ObjectPage {
  /** In ascending code point order of their keys. */
  readonly objects: readonly ObjectInfo[];
  /** The `startAfter` of the next page; absent on the last one. */
  readonly next?: string;
}

export interface GetOptions {
  readonly offset?: number;
  readonly length?: number;
  readonly signal?: AbortSignal;
}

/**
 * A plain blob store. It only ever sees the bytes the core hands it: compressed, encrypted and
 * already checksummed. It never sees plaintext or keys.
 *
 * Error conventions, so the core can explain failures whatever the backend:
 * - get() of a missing key rejects with an error whose `code` is 'ENOENT';
 * - put() with `ifNotExists` on an existing key rejects with `code` 'EEXIST';
 * - other failures keep Node's errno code where one applies ('ENOSPC', 'EACCES', 'EROFS', ...).
 *
 * A backend that stages uploads under temporary keys names them `<key>.<token>.partial`, the
 * token 8 to 64 lowercase hex digits (see STAGING_SUFFIX), and lists them, so that `backup
 * cleanup` can remove what a crashed run left behind; a `.partial` name without such a token is
 * not the core's to delete.
 *
 * Only regular objects are objects: a backend on a file system must not follow symbolic links,
 * and treats one (or any special file) under a key as no object at all: stat() says undefined,
 * get() rejects with 'ENOENT', list() leaves it out.
 *
 * Areas (plugin API 1.3): a key may be a path of segments, `wal/000000010000000000000001`, each
 * segment as isValidKeySegment() has it; what comes before the last '/' is the key's area. A
 * backend on a file system maps each area to a directory, created when a put needs it; an object
 * store keeps the key as it is. Listing sees one area at a time, the prefix's: list('wal/') and
 * list('wal/0000') see the objects of `wal/`, list() those outside every area, never the objects
 * of an area below (S3's Delimiter '/'). Backups and what belongs to them live outside every area,
 * where every version of synapse-backup has written them; the WAL archive in `wal/`.
 */
export interface StorageBackend {
  /** The registration scheme this backend was created for, e.g. 'local'. */
  readonly scheme: string;
  /** Where the objects live, for messages. Never contains credentials. */
  readonly location: string;
  readonly capabilities: StorageCapabilities;

  /** Consumes `body` to its end and publishes it under `key`; resolves once it is durable. */
  put(key: string, body: Readable, options?: PutOptions): Promise<ObjectInfo>;
  get(key: string, options?: GetOptions): Promise<Readable>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Every object of the prefix's area whose key starts with `prefix`, in no particular order. */
  list(prefix?: string): Promise<ObjectInfo[]>;
  /**
   * Optional (plugin API 1.3): one page of what list() sees, in key order, from `startAfter` on:
   * a storage of any size is read a page at a time. The core reads list() where it is missing.
   */
  listPage?(options?: ListOptions): Promise<ObjectPage>;
  /**
   * Removes the object; removing a missing key is not an error. An object the store retains
   * (see ObjectInfo.retainedUntil) is refused with code 'ERETAINED', and stays.
   */
  delete(key: string, options?: DeleteOptions): Promise<void>;
  /**
   * Optional (plugin API 1.1): the space at the location, for `status` and its disk-space alert.
   * Undefined, or a method that resolves undefined, where the backend cannot tell (an object store,
   * a FUSE file system that reports made-up numbers).
   */
  space?(): Promise<StorageSpace | undefined>;
  /**
   * Optional (plugin API 1.2): uploads the backend staged out of sight of list() and never
   * finished (S3's incomplete multipart uploads), begun before `olderThan`: removed, or with
   * `dryRun` only named. Each comes back as `<key> (begun <ISO time>)`. `backup cleanup` calls it
   * under the storage lock; an upload begun after `olderThan` may be a running backup's and is
   * never touched.
   */
  abortStaleUploads?(olderThan: Date, options?: {readonly dryRun?: boolean}): Promise<string[]>;
  close?(): Promise<void>;
}

/** Suffix of a staging object that a backend writes before publishing it under its final key. */
export const STAGING_SUFFIX = '.partial';

const KEY_SEGMENT = /^[A-Za-z0-9_.-]{1,200}$/;

/** One segment of a key: letters, digits, '_', '.', '-', not '.' or '..', at most 200 characters. */
export function isValidKeySegment(segment: string): boolean {
  return KEY_SEGMENT.test(segment) && segment !== '.' && segment !== '..';
}

/** A key as the contract allows it: segments joined by '/' (see the note on areas). */
export function isValidKey(key: string): boolean {
  return key.split('/').every((segment) => isValidKeySegment(segment));
}

/** The area of a key or a list prefix: what comes before its last '/', with the '/' ('' outside every area). */
export function areaOf(keyOrPrefix: string): string {
  return keyOrPrefix.slice(0, keyOrPrefix.lastIndexOf('/') + 1);
}

export interface StorageBackendOptions {
  /** Backend-specific location: a directory, a bucket URL... */
  readonly location: string;
  /**
   * 'read' for commands that only read (list, restore): the backend must work on read-only media.
   * 'read-write' should check that the location is writable.
   */
  readonly access: 'read' | 'read-write';
  /**
   * Create the location when it is missing (backup run, the first time). Otherwise a missing
   * location is an error with code 'ENOENT', whatever the access, so that every command but
   * the one that writes backups says the same thing about a wrong location.
   */
  readonly create?: boolean;
  /** The configuration environment, for backend-specific settings. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** What a storage plugin's `synapse-backup:storage-backends` hook returns. */
export interface StorageBackendFactory {
  readonly scheme: string;
  readonly description: string;
  create(options: StorageBackendOptions): Promise<StorageBackend>;
}
