import {randomBytes} from 'node:crypto';
import {constants, createReadStream, createWriteStream, type BigIntStats, type WriteStream} from 'node:fs';
import {once} from 'node:events';
import {access, link, lstat, mkdir, open, readdir, rename, stat, statfs, unlink, type FileHandle} from 'node:fs/promises';
import path from 'node:path';
import type {Readable} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import type {DeleteOptions, GetOptions, ListOptions, ObjectInfo, ObjectPage, PutOptions, StorageBackend, StorageCapabilities, StorageSpace} from 'synapse-backup/plugin-api';

const STAGING_SUFFIX = '.partial';

// The contract's key rules (isValidKey, areaOf in synapse-backup/plugin-api), restated: a plugin
// depends on the core's types only, never on its code at run time.
const KEY_SEGMENT = /^[A-Za-z0-9_.-]{1,200}$/;

function isValidKey(key: string): boolean {
  return key.split('/').every((segment) => KEY_SEGMENT.test(segment) && segment !== '.' && segment !== '..');
}

const UNLOCKED_STAGING_AGE_MS = 3_600_000;

/** A staging file's name as put() makes it: `<name>.<12 hex digits>.partial` (the contract allows 8 to 64). */
const STAGING_NAME = /^.+\.[0-9a-f]{8,64}\.partial$/;

function areaOf(keyOrPrefix: string): string {
  return keyOrPrefix.slice(0, keyOrPrefix.lastIndexOf('/') + 1);
}

/**
 * A directory of a hundred thousand files makes every lookup in it a readdir of them all, and the
 * WAL area gains a file a minute or faster: after a few weeks each push and each fetch spent more
 * time listing than archiving. So an object of an area whose name is longer than FAN_OUT_LENGTH
 * characters is kept in a subdirectory of the area named FAN_OUT_MARK and the name's first
 * FAN_OUT_LENGTH characters: for a WAL segment its timeline and log, 256 segments of 16 MiB. No
 * key segment can have that name, so it is never mistaken for an area. Objects that an earlier
 * version kept in the area itself are still found there.
 */
const FAN_OUT_LENGTH = 16;
// '~' is outside the key alphabet, and the one such character that URLs never encode, which an
// s3fs mount puts into object keys ('+' broke renames on s3fs over s3rver).
const FAN_OUT_MARK = '~';

/** The fan-out directory of a key of an area (see FAN_OUT_LENGTH), or undefined for one kept in its area's directory. */
function fanOutOf(key: string): string | undefined {
  const area = areaOf(key);
  const name = key.slice(area.length);
  return area !== '' && name.length > FAN_OUT_LENGTH ? `${FAN_OUT_MARK}${name.slice(0, FAN_OUT_LENGTH)}` : undefined;
}

function isFanOutDirectory(name: string): boolean {
  return name.length === FAN_OUT_MARK.length + FAN_OUT_LENGTH && name.startsWith(FAN_OUT_MARK) && KEY_SEGMENT.test(name.slice(FAN_OUT_MARK.length));
}

/** A file's version, as a key's etag: a replaced file is another inode; one changed in place has another time or size. */
function fileEtag(info: {ino: bigint; mtimeNs: bigint; size: bigint}): string {
  return `${info.ino.toString(16)}-${info.mtimeNs.toString(16)}-${info.size.toString(16)}`;
}

function changed(key: string, why: string): NodeJS.ErrnoException {
  return codedError('ECHANGED', `object '${key}' ${why}: left as it is`);
}

function byKey(a: ObjectInfo, b: ObjectInfo): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function codedError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), {code});
}

async function lstatIfExists(file: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  return lstat(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
}

async function statIfExists(file: string): Promise<Awaited<ReturnType<typeof stat>> | undefined> {
  try {
    return await stat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * mkdir -p, one directory at a time from the deepest one that exists. Node's recursive mkdir
 * never returns on some paths (under /proc it spins on ENOENT); this fails at once, naming why.
 */
async function createDirectory(directory: string): Promise<void> {
  const missing: string[] = [];
  let current = directory;
  for (;;) {
    const info = await statIfExists(current);
    if (info) {
      if (!info.isDirectory()) throw codedError('ENOTDIR', `'${current}' is not a directory`);
      break;
    }
    missing.unshift(current);
    const parent = path.dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const component of missing) {
    try {
      await mkdir(component, {mode: 0o700});
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && (await statIfExists(component))?.isDirectory()) continue;
      throw codedError(code ?? 'EIO', `unable to create '${component}': ${(error as Error).message}`);
    }
  }
}

/** As the contract has it for a missing key: what is not a regular file is no object of ours. */
function notRegular(key: string): NodeJS.ErrnoException {
  return codedError('ENOENT', `'${key}' is not a regular file (a symbolic link or another special file), which synapse-backup never writes`);
}

/**
 * Objects as files in one directory. put() writes a staging file, fsyncs it, then publishes it with
 * link() (which refuses to replace an existing file) or rename(), and fsyncs the directory, so a
 * backup is either there whole or not at all, even across a crash or power loss.
 */
export interface LocalDirectoryOptions {
  /** Create a missing directory (backup run, the first time). */
  readonly create?: boolean;
  /**
   * Publish with link(), which refuses atomically to replace a file. Some network file systems
   * have no hard links (an SMB share through rclone answers EIO): without them an ifNotExists put
   * looks, then renames, and the backend declares no conditional put.
   */
  readonly hardLinks?: boolean;
  /**
   * The device every file must be on (a network mount's): a staging file opened anywhere else (the
   * mount dropped and the path now leads to the local disk under it) is removed and refused with
   * 'ENOTMOUNTED' before a byte is written.
   */
  readonly device?: number;
}

export class LocalDirectoryStorage implements StorageBackend {
  readonly scheme = 'local';
  readonly capabilities: StorageCapabilities;
  readonly location: string;
  readonly #hardLinks: boolean;
  readonly #device: number | undefined;

  private constructor(directory: string, options: LocalDirectoryOptions) {
    this.location = directory;
    this.#hardLinks = options.hardLinks !== false;
    this.#device = options.device;
    // Without hard links a conditional put looks, then renames. A conditional replace or delete
    // always does: no file system compares and replaces (or unlinks) in one step.
    this.capabilities = {atomicPut: true, conditionalPut: this.#hardLinks, rangeReads: true, conditionalReplace: false};
  }

  /**
   * Opens the directory. With `create`, a missing one is created 0700, parent by parent. For
   * writing it must be writable by this user; for reading it may be read-only (a backup disk
   * mounted ro for a restore).
   */
  static async open(directory: string, mode: 'read' | 'read-write' = 'read-write', options: LocalDirectoryOptions = {}): Promise<LocalDirectoryStorage> {
    const absolute = path.resolve(directory);
    let info = await statIfExists(absolute);
    if (!info) {
      if (!options.create) throw codedError('ENOENT', `'${absolute}' does not exist`);
      await createDirectory(absolute);
      info = await stat(absolute);
    }
    if (!info.isDirectory()) throw codedError('ENOTDIR', `'${absolute}' is not a directory`);
    const needed = mode === 'read-write' ? constants.R_OK | constants.W_OK | constants.X_OK : constants.R_OK | constants.X_OK;
    try {
      await access(absolute, needed);
    } catch (error) {
      throw codedError((error as NodeJS.ErrnoException).code ?? 'EACCES', `'${absolute}' is not ${mode === 'read-write' ? 'writable' : 'readable'} by this user`);
    }
    return new LocalDirectoryStorage(absolute, options);
  }

  /** A key's file: its area (`wal/`) a directory under the location, as the contract maps it, and within it its fan-out directory if it has one. */
  #path(key: string): string {
    const flat = this.#flatPath(key);
    const fanOut = fanOutOf(key);
    return fanOut ? path.join(path.dirname(flat), fanOut, path.basename(flat)) : flat;
  }

  /** Where a key's file is without fan-out: where an earlier version kept every object of an area. */
  #flatPath(key: string): string {
    if (!isValidKey(key)) throw codedError('EINVAL', `invalid object key '${key}'`);
    return path.join(this.location, ...key.split('/'));
  }

  /**
   * The files a key may be in, the current place first: a key with a fan-out directory may still
   * be in its area's own directory, from an earlier version. A fan-out directory that is not a
   * directory (a symbolic link planted there) holds no objects: it is never followed.
   */
  async #placesOf(key: string): Promise<string[]> {
    const flat = this.#flatPath(key);
    const file = this.#path(key);
    if (file === flat) return [flat];
    return (await lstatIfExists(path.dirname(file)))?.isDirectory() ? [file, flat] : [flat];
  }

  /** The file a key is in, with its lstat, or undefined where it is no object (missing, or not a regular file). */
  async #locate(key: string): Promise<{file: string; info: BigIntStats} | undefined> {
    for (const file of await this.#placesOf(key)) {
      try {
        const info = await lstat(file, {bigint: true});
        if (info.isFile()) return {file, info};
      } catch (error) {
        // ENOTDIR: a file where the key's area would be a directory; no such object.
        if (!['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
      }
    }
    return undefined;
  }

  /** Creates the fan-out directory of a key about to be written, as #walkArea creates an area: 0700, never through a symbolic link, and durable in its parent. */
  async #prepareFanOut(key: string): Promise<void> {
    const fanOut = fanOutOf(key);
    if (!fanOut) return;
    const directory = path.dirname(this.#path(key));
    const parent = path.dirname(directory);
    let info = await lstatIfExists(directory);
    if (!info) {
      try {
        await mkdir(directory, {mode: 0o700});
        // The new directory's entry must survive a crash as the file published in it does.
        await this.#syncDirectory(parent);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      info = await lstat(directory);
    }
    if (!info.isDirectory()) throw codedError('ENOTDIR', `'${directory}', where the objects '${areaOf(key)}${fanOut.slice(FAN_OUT_MARK.length)}...' are kept, is not a directory (a symbolic link or a file is never followed there): remove it`);
  }

  /** The directory of an area, '' being the location itself. */
  #areaDirectory(area: string): string {
    return area === '' ? this.location : path.join(this.location, ...area.slice(0, -1).split('/'));
  }

  /**
   * Walks the directories of a key's area: each must be a directory itself, never a symbolic link
   * (one planted as `wal` would lead our writes and reads elsewhere). With `create`, a missing one
   * is made 0700 like the location; without, a missing area is reported as such (no objects there).
   */
  async #walkArea(keyOrPrefix: string, create: boolean): Promise<'present' | 'missing'> {
    let directory = this.location;
    for (const segment of areaOf(keyOrPrefix).split('/').slice(0, -1)) {
      directory = path.join(directory, segment);
      let info = await lstat(directory).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      if (!info) {
        if (!create) return 'missing';
        try {
          await mkdir(directory, {mode: 0o700});
          await this.#syncDirectory(path.dirname(directory));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        info = await lstat(directory);
      }
      if (!info.isDirectory()) throw codedError('ENOTDIR', `'${directory}', the area of '${keyOrPrefix}', is not a directory (a symbolic link or a file is never followed there): remove it`);
    }
    return 'present';
  }

  async #syncDirectory(directory: string = this.location): Promise<void> {
    const handle = await open(directory, 'r');
    try {
      await handle.sync();
    } catch (error) {
      // Some network and FUSE file systems cannot fsync a directory; the rename is still done.
      if (!['EINVAL', 'ENOTSUP', 'EBADF', 'EISDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
    } finally {
      await handle.close();
    }
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const finalPath = this.#path(key);
    const stagingPath = this.#stagingPath(key);
    let handle: FileHandle | undefined;
    let writer: WriteStream | undefined;
    try {
      await this.#walkArea(key, true);
      await this.#prepareFanOut(key);
      handle = await open(stagingPath, 'wx', options.private ? 0o600 : 0o644);
      if (this.#device !== undefined && (await handle.stat()).dev !== this.#device) {
        await handle.close();
        throw codedError('ENOTMOUNTED', `'${this.location}' is no longer on the mounted file system it was opened on (the mount is gone); nothing was written there`);
      }
      // flush: fsync before close, so the data is on disk before the name points at it.
      writer = createWriteStream('', {fd: handle, flush: true, highWaterMark: 1024 * 1024});
      await pipeline(body, writer, {signal: options.signal});
      if (options.ifMatch !== undefined) {
        await this.#publishReplacing(key, options.ifMatch, stagingPath, finalPath);
      } else if (options.ifNotExists) {
        await this.#publishWithoutReplacing(key, stagingPath, finalPath);
      } else {
        await rename(stagingPath, finalPath);
        await this.#removeFlatCopy(key, finalPath);
      }
      await this.#syncDirectory(path.dirname(finalPath));
    } catch (error) {
      body.destroy();
      await this.#removeStaging(stagingPath, handle, writer);
      throw error;
    }
    return (await this.stat(key))!;
  }

  /**
   * Removes what a failed put staged. The file is closed first: an SMB server refuses to delete a
   * file that is still open, and one attempt more covers a server slow to let go of it. What is
   * left even so is a staging object, which the next cleanup removes.
   */
  async #removeStaging(stagingPath: string, handle: FileHandle | undefined, writer: WriteStream | undefined): Promise<void> {
    // rclone finishes an upload when the file is closed: a close still in flight would bring back a file deleted before it.
    if (writer && !writer.closed) await once(writer, 'close').catch(() => {});
    else await handle?.close().catch(() => {});
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await unlink(stagingPath);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  /** Beside the key's file, in the same directory, so that publishing it is a rename or a link within one directory. */
  #stagingPath(key: string): string {
    const final = this.#path(key);
    return path.join(path.dirname(final), `${path.basename(final)}.${randomBytes(6).toString('hex')}${STAGING_SUFFIX}`);
  }

  /**
   * Replaces the file of `key` only if it is still the version `etag` names. A file system has no
   * compare-and-swap: this is a look, then the rename, which a writer can slip between (hence no
   * conditionalReplace); the core adds a host-wide mutex where it relies on it (the lock).
   */
  async #publishReplacing(key: string, etag: string, stagingPath: string, finalPath: string): Promise<void> {
    const current = await this.stat(key);
    if (!current) throw changed(key, 'is gone');
    if (current.etag !== etag) throw changed(key, 'is another version');
    await rename(stagingPath, finalPath);
    await this.#removeFlatCopy(key, finalPath);
  }

  /** After a key was published in its fan-out directory, the copy an earlier version kept in the area's own directory is the old version: removed, so that it never comes back. */
  async #removeFlatCopy(key: string, finalPath: string): Promise<void> {
    const flat = this.#flatPath(key);
    if (flat !== finalPath) await this.#removeFile(flat);
  }

  /** Unlinks a file, durably (its directory fsynced); one that is not there is no error. */
  async #removeFile(file: string): Promise<void> {
    try {
      await unlink(file);
    } catch (error) {
      if (['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) return;
      throw error;
    }
    await this.#syncDirectory(path.dirname(file));
  }

  async #publishWithoutReplacing(key: string, stagingPath: string, finalPath: string): Promise<void> {
    if (!this.#hardLinks) {
      // Not atomic against a concurrent writer, which the storage lock excludes (on this host: see conditionalPut).
      if (await this.stat(key)) throw codedError('EEXIST', `object '${key}' already exists`);
      await rename(stagingPath, finalPath);
      return;
    }
    // A copy an earlier version kept in the area's own directory is the key too. Looked at, then
    // linked: not atomic against such a version writing the same key at the same moment.
    if (this.#flatPath(key) !== finalPath && (await this.#locate(key))) throw codedError('EEXIST', `object '${key}' already exists`);
    try {
      await link(stagingPath, finalPath);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw codedError('EEXIST', `object '${key}' already exists`);
      // File systems without hard links (some FUSE mounts): check, then rename. Not atomic against
      // a concurrent writer, which the storage lock already excludes.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw error;
      if (await this.stat(key)) throw codedError('EEXIST', `object '${key}' already exists`);
      await rename(stagingPath, finalPath);
      return;
    }
    await unlink(stagingPath);
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    // O_NOFOLLOW, then a check of what was opened: a symbolic link planted under a backup's name
    // (to /etc/shadow, say) is refused without a word about its target. O_NONBLOCK, which a
    // regular file ignores, keeps a FIFO planted there from blocking the open until a writer comes.
    let handle;
    if ((await this.#walkArea(key, false)) === 'missing') throw codedError('ENOENT', `object '${key}' does not exist`);
    const places = await this.#placesOf(key);
    for (const [index, file] of places.entries()) {
      try {
        handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ELOOP') throw notRegular(key);
        if (code === 'ENOENT' && index < places.length - 1) continue;
        throw error;
      }
    }
    if (!handle) throw codedError('ENOENT', `object '${key}' does not exist`);
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw notRegular(key);
    }
    const start = options.offset ?? 0;
    const end = options.length === undefined ? undefined : start + options.length - 1;
    if (end !== undefined && end < start) {
      await handle.close();
      throw codedError('EINVAL', `invalid range for '${key}'`);
    }
    return createReadStream('', {fd: handle, start, end, highWaterMark: 1024 * 1024, signal: options.signal});
  }

  /** Only regular files are objects: a symbolic link or a device under an object's name is not one. */
  async stat(key: string): Promise<ObjectInfo | undefined> {
    if ((await this.#walkArea(key, false)) === 'missing') return undefined;
    const found = await this.#locate(key);
    return found ? {key, size: Number(found.info.size), modifiedAt: found.info.mtime, etag: fileEtag(found.info)} : undefined;
  }

  /** The names in the prefix's area that may be objects: regular files with a key the contract allows (what else is there is nobody's object). */
  async #namesIn(prefix: string): Promise<string[]> {
    const area = areaOf(prefix);
    if ((await this.#walkArea(prefix, false)) === 'missing') return [];
    let entries;
    try {
      entries = await readdir(this.#areaDirectory(area), {withFileTypes: true});
    } catch (error) {
      // An area nothing was ever written to has no directory yet: it is empty.
      if (area !== '' && ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) return [];
      throw error;
    }
    const names = new Set(entries.filter((entry) => entry.isFile() && isValidKey(`${area}${entry.name}`) && `${area}${entry.name}`.startsWith(prefix)).map((entry) => `${area}${entry.name}`));
    if (area === '') return [...names];
    // Only the fan-out directories that can hold names of the prefix are read: one, for a lookup of a WAL file.
    const wanted = prefix.slice(area.length);
    for (const entry of entries) {
      if (!entry.isDirectory() || !isFanOutDirectory(entry.name)) continue;
      const start = entry.name.slice(FAN_OUT_MARK.length);
      if (!(wanted.length >= FAN_OUT_LENGTH ? wanted.startsWith(start) : start.startsWith(wanted))) continue;
      let files;
      try {
        files = await readdir(path.join(this.#areaDirectory(area), entry.name), {withFileTypes: true});
      } catch (error) {
        // Gone since the area was read (nothing removes one today): no objects there.
        if (['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) continue;
        throw error;
      }
      for (const file of files) {
        const key = `${area}${file.name}`;
        // A name that does not belong in this directory is nobody's object: stat() looks for its key elsewhere and leaves it out.
        if (file.isFile() && isValidKey(key) && key.startsWith(prefix)) names.add(key);
      }
    }
    return [...names];
  }

  async #statAll(keys: readonly string[]): Promise<ObjectInfo[]> {
    const objects = await Promise.all(keys.map((key) => this.stat(key)));
    return objects.filter((object): object is ObjectInfo => object !== undefined);
  }

  async list(prefix = ''): Promise<ObjectInfo[]> {
    return this.#statAll(await this.#namesIn(prefix));
  }

  /** A directory has no order nor position: the names are sorted here, and only the page's files are looked at. */
  async listPage(options: ListOptions = {}): Promise<ObjectPage> {
    const limit = options.limit ?? 1000;
    const after = options.startAfter;
    const names = (await this.#namesIn(options.prefix ?? '')).filter((key) => after === undefined || key > after).sort();
    const page = names.slice(0, limit);
    const objects = (await this.#statAll(page)).sort(byKey);
    return names.length > limit ? {objects, next: page.at(-1)!} : {objects};
  }

  /**
   * Staging files that puts in an area (`wal/`) left behind, begun before `olderThan`: the
   * catalog lists the location itself, where cleanup finds its own leftovers, but never an area.
   * Only names of the contract's staging form, only regular files, no symbolic link followed.
   */
  async abortStaleUploads(olderThan: Date, options: {readonly dryRun?: boolean} = {}): Promise<string[]> {
    // Writers to an area (WAL pushes) do not take the storage lock: a staging file is theirs to
    // finish until it has not been written to for an hour, whatever the caller's lock says.
    const cutoff = new Date(Math.min(olderThan.getTime(), Date.now() - UNLOCKED_STAGING_AGE_MS));
    const stale: string[] = [];
    const walk = async (directory: string, area: string): Promise<void> => {
      for (const entry of await readdir(directory, {withFileTypes: true})) {
        if (entry.isDirectory()) {
          if (isValidKey(entry.name)) await walk(path.join(directory, entry.name), `${area}${entry.name}/`);
          // A fan-out directory's files are objects (and staging files) of the area it is in.
          else if (area !== '' && isFanOutDirectory(entry.name)) await walk(path.join(directory, entry.name), area);
          continue;
        }
        // The location's own staging files are the catalog's leftovers; here, only the areas'.
        if (area === '' || !entry.isFile() || !STAGING_NAME.test(entry.name)) continue;
        const file = path.join(directory, entry.name);
        const info = await lstat(file).catch(() => undefined);
        if (!info?.isFile() || info.mtime >= cutoff) continue;
        if (!options.dryRun) await unlink(file).catch(() => {});
        stale.push(`${area}${entry.name} (begun ${info.mtime.toISOString()})`);
      }
    };
    await walk(this.location, '');
    return stale;
  }

  /** What `df` shows for the directory's file system: the blocks an unprivileged writer may still use, and the size. */
  async space(): Promise<StorageSpace | undefined> {
    const stats = await statfs(this.location);
    return {freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize};
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    if (!isValidKey(key)) throw codedError('EINVAL', `invalid object key '${key}'`);
    if ((await this.#walkArea(key, false)) === 'missing') return;
    if (options.ifMatch !== undefined) {
      // A look, then the unlink (see #publishReplacing).
      const current = await this.stat(key);
      if (!current) return;
      if (current.etag !== options.ifMatch) throw changed(key, 'is another version');
    }
    // Both places: a copy an earlier version left in the area's own directory is the same key.
    for (const file of await this.#placesOf(key)) await this.#removeFile(file);
  }
}
