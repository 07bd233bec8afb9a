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
   * Optional: the store's entity tag for this version of the object, where it has one (S3). Not a
   * checksum of the content (a multipart or SSE-KMS ETag is not an MD5): the metadata's SHA-256 is.
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
  readonly signal?: AbortSignal;
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
  /** Every object whose key starts with `prefix`, in no particular order. */
  list(prefix?: string): Promise<ObjectInfo[]>;
  /**
   * Removes the object; removing a missing key is not an error. An object the store retains
   * (see ObjectInfo.retainedUntil) is refused with code 'ERETAINED', and stays.
   */
  delete(key: string): Promise<void>;
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
