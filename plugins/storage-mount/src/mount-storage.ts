import {randomBytes} from 'node:crypto';
import {link, readFile, realpath, stat, unlink} from 'node:fs/promises';
import path from 'node:path';
import {Readable, Transform, pipeline} from 'node:stream';
import {LocalDirectoryStorage} from '@synapse-backup/plugin-storage-local';
import type {DeleteOptions, GetOptions, ListOptions, ObjectInfo, ObjectPage, PutOptions, StorageBackend, StorageCapabilities, StorageSpace} from 'synapse-backup/plugin-api';

import {DEFAULT_NETWORK_FSTYPES, deviceName, judgeMount, mountOf, parseMountinfo, type MountEntry} from './mountinfo.js';

function codedError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), {code});
}

export interface MountStorageOptions {
  readonly create?: boolean;
  /** The scheme this storage answers to: 'mount', or that of a backend built on it ('s3fs'). */
  readonly scheme?: string;
  /** Never publish with link(): for file systems known to lack hard links (s3fs). Probed otherwise. */
  readonly noHardLinks?: boolean;
  /**
   * After a put, compare the size the file system reports with the bytes sent, so that an upload
   * the FUSE daemon lost or cut short fails the put (s3fs uploads on fsync and close).
   */
  readonly verifySize?: boolean;
  /** The file system's free space means nothing (s3fs reports made-up numbers): space() says unknown. */
  readonly noSpace?: boolean;
  /** Accepted file system types (BACKUP_MOUNT_FSTYPES); default DEFAULT_NETWORK_FSTYPES. */
  readonly fsTypes?: readonly string[];
  /** For tests of the parsing on recorded content; the real one otherwise. */
  readonly mountinfo?: () => Promise<string>;
}

/** The path as the kernel resolves it, for a directory that may not exist yet: its deepest existing ancestor resolved, the rest appended. */
async function resolveThroughExisting(directory: string): Promise<string> {
  const rest: string[] = [];
  let current = path.resolve(directory);
  for (;;) {
    try {
      return path.join(await realpath(current), ...rest);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      const parent = path.dirname(current);
      if (parent === current) throw error;
      rest.unshift(path.basename(current));
      current = parent;
    }
  }
}

function describe(entry: MountEntry): string {
  return `${entry.fsType} ${entry.source} on ${entry.mountPoint}`;
}

/**
 * A directory on a network file system that the OS mounted (NFS, SMB, a FUSE network mount). The
 * objects are files as in a local directory; what this adds is the promise never to write
 * anywhere else: the directory must lie on an active mount of an accepted type when the storage
 * is opened and before every operation, every staging file must be on that mount's device, and a
 * mount that drops (the path then leads to the local disk under the mount point) fails the
 * operation instead of filling that disk.
 */
export class MountStorage implements StorageBackend {
  readonly scheme: string;
  readonly location: string;
  readonly capabilities: StorageCapabilities;
  readonly #inner: LocalDirectoryStorage;
  readonly #mount: MountEntry;
  readonly #readMountinfo: () => Promise<string>;
  readonly #verifySize: boolean;
  readonly #noSpace: boolean;

  private constructor(inner: LocalDirectoryStorage, mount: MountEntry, readMountinfo: () => Promise<string>, options: MountStorageOptions) {
    this.scheme = options.scheme ?? 'mount';
    this.#verifySize = options.verifySize === true;
    this.#noSpace = options.noSpace === true;
    this.#inner = inner;
    this.#mount = mount;
    this.#readMountinfo = readMountinfo;
    this.location = inner.location;
    this.capabilities = inner.capabilities;
  }

  static async open(directory: string, access: 'read' | 'read-write', options: MountStorageOptions = {}): Promise<MountStorage> {
    const readMountinfo = options.mountinfo ?? (() => readFile('/proc/self/mountinfo', 'utf8'));
    const fsTypes = options.fsTypes ?? DEFAULT_NETWORK_FSTYPES;
    const resolved = await resolveThroughExisting(directory);
    const judgement = judgeMount(parseMountinfo(await readMountinfo()), resolved, fsTypes);
    if (!judgement.accepted) throw codedError('ENOTMOUNTED', judgement.reason);
    const {mount} = judgement;
    const device = (await stat(mount.mountPoint)).dev;
    if (deviceName(device) !== mount.device) throw codedError('ENOTMOUNTED', `the mount ${describe(mount)} changed while it was being opened`);
    const hardLinks = options.noHardLinks ? false : access === 'read-write' ? await MountStorage.#supportsHardLinks(resolved, options.create === true, device) : true;
    const inner = await LocalDirectoryStorage.open(resolved, access, {create: options.create === true, hardLinks, device});
    const storage = new MountStorage(inner, mount, readMountinfo, options);
    await storage.#assertMounted();
    return storage;
  }

  /**
   * Whether link() works on this server: SMB through rclone answers EIO, some NFS servers refuse
   * it. Any failure of the link itself counts as no (the safe side: a look then a rename, and no
   * conditional put declared); a failure to write the probe is the storage's and is thrown. The
   * probes are named as `check` names its own, so one a killed run leaves is cleanup's.
   */
  static async #supportsHardLinks(directory: string, create: boolean, device: number): Promise<boolean> {
    const probe = await LocalDirectoryStorage.open(directory, 'read-write', {create, device});
    const key = `synapse-backup-check.${randomBytes(6).toString('hex')}.probe`;
    const twin = path.join(probe.location, `synapse-backup-check.${randomBytes(6).toString('hex')}.probe`);
    await probe.put(key, Readable.from([Buffer.from('probe')]));
    try {
      await link(path.join(probe.location, key), twin);
      await unlink(twin);
      return true;
    } catch {
      return false;
    } finally {
      await probe.delete(key).catch(() => {});
    }
  }

  /** The mount is still there, the same one, and the directory still on it. */
  async #assertMounted(): Promise<void> {
    const now = mountOf(parseMountinfo(await this.#readMountinfo()), this.location);
    const gone = (): NodeJS.ErrnoException =>
      codedError('ENOTMOUNTED', `the network mount that holds '${this.location}' (${describe(this.#mount)}) is gone; nothing was written to the local disk under it. Mount it again and rerun`);
    if (!now || now.device !== this.#mount.device || now.mountPoint !== this.#mount.mountPoint) throw gone();
    let info;
    try {
      info = await stat(this.location);
    } catch (error) {
      if (['ENOTCONN', 'ENOENT', 'EIO', 'ESTALE'].includes((error as NodeJS.ErrnoException).code ?? '')) throw gone();
      throw error;
    }
    if (deviceName(info.dev) !== this.#mount.device) throw gone();
  }

  async put(key: string, body: Readable, options?: PutOptions): Promise<ObjectInfo> {
    try {
      await this.#assertMounted();
    } catch (error) {
      body.destroy();
      throw error;
    }
    if (!this.#verifySize) {
      const info = await this.#inner.put(key, body, options);
      await this.#assertMounted();
      return info;
    }
    let sent = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        sent += chunk.length;
        done(null, chunk);
      },
    });
    // pipeline() carries a failure either way: a failed source fails the put, a failed put stops the source.
    pipeline(body, counted, () => {});
    const info = await this.#inner.put(key, counted, options);
    await this.#assertMounted();
    const stored = await this.#inner.stat(key);
    if (stored?.size !== sent) {
      await this.#inner.delete(key).catch(() => {});
      throw codedError('EIO', `the ${this.scheme} file system reports ${stored?.size ?? 'no'} bytes for '${key}' after the upload of ${sent}: the upload was lost or cut short, and the object was removed`);
    }
    return info;
  }

  async get(key: string, options?: GetOptions): Promise<Readable> {
    await this.#assertMounted();
    return this.#inner.get(key, options);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    await this.#assertMounted();
    return this.#inner.stat(key);
  }

  async list(prefix?: string): Promise<ObjectInfo[]> {
    await this.#assertMounted();
    return this.#inner.list(prefix);
  }

  async listPage(options?: ListOptions): Promise<ObjectPage> {
    await this.#assertMounted();
    return this.#inner.listPage(options);
  }

  async delete(key: string, options?: DeleteOptions): Promise<void> {
    await this.#assertMounted();
    return this.#inner.delete(key, options);
  }

  async abortStaleUploads(olderThan: Date, options?: {readonly dryRun?: boolean}): Promise<string[]> {
    await this.#assertMounted();
    return this.#inner.abortStaleUploads(olderThan, options);
  }

  /** Measured only on the live mount: under a dropped one, statfs would describe the local disk. */
  async space(): Promise<StorageSpace | undefined> {
    if (this.#noSpace) return undefined;
    await this.#assertMounted();
    return this.#inner.space();
  }
}
