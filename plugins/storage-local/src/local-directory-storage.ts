import {randomBytes} from 'node:crypto';
import {constants, createReadStream, createWriteStream, type WriteStream} from 'node:fs';
import {once} from 'node:events';
import {access, link, lstat, mkdir, open, readdir, rename, stat, statfs, unlink, type FileHandle} from 'node:fs/promises';
import path from 'node:path';
import type {Readable} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import type {GetOptions, ObjectInfo, PutOptions, StorageBackend, StorageCapabilities, StorageSpace} from 'synapse-backup/plugin-api';

const STAGING_SUFFIX = '.partial';

function codedError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), {code});
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
    this.capabilities = {atomicPut: true, conditionalPut: this.#hardLinks, rangeReads: true};
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

  #path(key: string): string {
    if (key === '' || key === '.' || key === '..' || key.includes('/') || key.includes('\\') || key.includes('\0')) {
      throw codedError('EINVAL', `invalid object key '${key}'`);
    }
    return path.join(this.location, key);
  }

  async #syncDirectory(): Promise<void> {
    const handle = await open(this.location, 'r');
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
    const stagingPath = this.#path(`${key}.${randomBytes(6).toString('hex')}${STAGING_SUFFIX}`);
    let handle: FileHandle | undefined;
    let writer: WriteStream | undefined;
    try {
      handle = await open(stagingPath, 'wx', options.private ? 0o600 : 0o644);
      if (this.#device !== undefined && (await handle.stat()).dev !== this.#device) {
        await handle.close();
        throw codedError('ENOTMOUNTED', `'${this.location}' is no longer on the mounted file system it was opened on (the mount is gone); nothing was written there`);
      }
      // flush: fsync before close, so the data is on disk before the name points at it.
      writer = createWriteStream('', {fd: handle, flush: true, highWaterMark: 1024 * 1024});
      await pipeline(body, writer, {signal: options.signal});
      if (options.ifNotExists) {
        await this.#publishWithoutReplacing(stagingPath, finalPath);
      } else {
        await rename(stagingPath, finalPath);
      }
      await this.#syncDirectory();
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

  async #publishWithoutReplacing(stagingPath: string, finalPath: string): Promise<void> {
    if (!this.#hardLinks) {
      // Not atomic against a concurrent writer, which the storage lock excludes (on this host: see conditionalPut).
      if (await this.stat(path.basename(finalPath))) throw codedError('EEXIST', `object '${path.basename(finalPath)}' already exists`);
      await rename(stagingPath, finalPath);
      return;
    }
    try {
      await link(stagingPath, finalPath);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw codedError('EEXIST', `object '${path.basename(finalPath)}' already exists`);
      // File systems without hard links (some FUSE mounts): check, then rename. Not atomic against
      // a concurrent writer, which the storage lock already excludes.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw error;
      if (await this.stat(path.basename(finalPath))) throw codedError('EEXIST', `object '${path.basename(finalPath)}' already exists`);
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
    try {
      handle = await open(this.#path(key), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw notRegular(key);
      throw error;
    }
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
    try {
      const info = await lstat(this.#path(key));
      return info.isFile() ? {key, size: info.size, modifiedAt: info.mtime} : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async list(prefix = ''): Promise<ObjectInfo[]> {
    const entries = await readdir(this.location, {withFileTypes: true});
    const objects = await Promise.all(
      entries.filter((entry) => entry.isFile() && entry.name.startsWith(prefix)).map((entry) => this.stat(entry.name)),
    );
    return objects.filter((object): object is ObjectInfo => object !== undefined);
  }

  /** What `df` shows for the directory's file system: the blocks an unprivileged writer may still use, and the size. */
  async space(): Promise<StorageSpace | undefined> {
    const stats = await statfs(this.location);
    return {freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize};
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.#path(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    await this.#syncDirectory();
  }
}
