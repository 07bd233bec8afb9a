import {hostname} from 'node:os';

import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import {SynapseError, errnoCode} from '../errors/index.js';
import {runExclusivelyOnThisHost} from './host-mutex.js';
import {processStartTime} from './process-identity.js';
import {LOCK_KEY} from '../naming/index.js';
import {readSmallObject, storageError, writeSmallObject} from '../storage/index.js';

export interface LockHolder {
  readonly pid: number;
  readonly hostname: string;
  readonly operation: string;
  readonly acquiredAt: string;
  /** The holder's boot and start time (see processStartTime); absent in locks of older versions. */
  readonly processStartTime?: string;
}

export interface HeldLock {
  readonly holder: LockHolder;
  /** The crashed run whose lock this one took over, to be logged. */
  readonly tookOverFrom?: LockHolder;
  /** What this lock cannot promise on this storage, to be logged (see StorageCapabilities.conditionalPut). */
  readonly limitation?: string;
  /** For a lock taken empty on a full disk: writes the holder into it once there is room again. */
  recordHolder(): Promise<void>;
  release(): Promise<void>;
}

export interface LockOptions {
  /**
   * On a full storage, take the lock as an empty object (a name needs no data blocks) rather than
   * fail: for cleanup, the remedy every "disk full" message suggests.
   */
  readonly evenWhenFull?: boolean;
}

/** What an empty lock means: a cleanup that took it on a full disk and has not written its holder yet. */
const EMPTY_LOCK_HOLDER: LockHolder = {pid: 0, hostname: 'unknown', operation: 'backup cleanup on a full storage', acquiredAt: 'unknown'};

/** How long a run waits while another run on this host checks the same stale lock. */
const TAKEOVER_WAIT_MS = 10_000;

/**
 * Creates the lock object only if there is none. On a backend with an atomic conditional put that
 * is one call. On one without (s3fs renames by copy and delete, some FUSE file systems have no
 * hard links), a look then a put is atomic only against runs of this host, which a host-wide mutex
 * makes it; runs on other hosts are not excluded, and the lock says so.
 */
async function createLockObject(storage: StorageBackend, content: string): Promise<ObjectInfo> {
  if (storage.capabilities.conditionalPut) return writeSmallObject(storage, LOCK_KEY, content, {ifNotExists: true, private: true});
  let created: ObjectInfo | undefined;
  const done = await runExclusivelyOnThisHost(`${storage.scheme}:${storage.location}:${LOCK_KEY}:create`, TAKEOVER_WAIT_MS, async () => {
    if (await storage.stat(LOCK_KEY)) throw Object.assign(new Error(`object '${LOCK_KEY}' already exists`), {code: 'EEXIST'});
    created = await writeSmallObject(storage, LOCK_KEY, content, {private: true});
  });
  if (!done || !created) throw Object.assign(new Error(`object '${LOCK_KEY}' is being created by another run`), {code: 'EEXIST'});
  return created;
}

/** Whether the lock can be compared and removed (or replaced) in one step of the storage's: see StorageCapabilities.conditionalReplace. */
function atomicallyConditional(storage: StorageBackend, version: ObjectInfo | undefined): version is ObjectInfo & {etag: string} {
  return storage.capabilities.conditionalReplace === true && version?.etag !== undefined;
}

/**
 * Removes the lock if it is still the version `version` describes, and says whether it did. In
 * one step where the storage compares and deletes atomically (S3 with If-Match); elsewhere its
 * holder is read and compared, and the delete names the version, under the host-wide mutex that
 * every release and takeover on this host takes: a takeover can never slip between them.
 */
async function removeLockIf(storage: StorageBackend, version: ObjectInfo | undefined, stillExpected: () => Promise<boolean>): Promise<boolean> {
  if (atomicallyConditional(storage, version)) {
    try {
      await storage.delete(LOCK_KEY, {ifMatch: version.etag});
      return true;
    } catch (error) {
      if (errnoCode(error) === 'ECHANGED') return false;
      throw error;
    }
  }
  let removed = false;
  const ran = await runExclusivelyOnThisHost(`${storage.scheme}:${storage.location}:${LOCK_KEY}`, TAKEOVER_WAIT_MS, async () => {
    if (!(await stillExpected())) return;
    try {
      // Still the version read, where the backend can tell: the window left is its look before its delete.
      await storage.delete(LOCK_KEY, version?.etag === undefined ? {} : {ifMatch: version.etag});
      removed = true;
    } catch (error) {
      if (errnoCode(error) !== 'ECHANGED') throw error;
    }
  });
  return ran && removed;
}

export function singleHostLimitation(storage: StorageBackend): string | undefined {
  return storage.capabilities.conditionalPut
    ? undefined
    : `the ${storage.scheme} storage cannot create an object only if it is absent, atomically: the lock keeps out other runs on this host only, so never point runs on two hosts at '${storage.location}'`;
}

function sameHolder(one: LockHolder, other: LockHolder): boolean {
  return one.pid === other.pid && one.hostname === other.hostname && one.operation === other.operation && one.acquiredAt === other.acquiredAt && one.processStartTime === other.processStartTime;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === 'EPERM';
  }
}

/**
 * Whether the run that wrote a lock on this host is gone: its PID is dead, or now belongs to
 * another process (another start time, or another boot). A lock without a start time (older
 * versions) is gone only when its PID is dead.
 */
function holderIsGone(holder: LockHolder): boolean {
  if (holder.pid <= 0) return false;
  if (!isProcessAlive(holder.pid)) return true;
  if (holder.processStartTime === undefined) return false;
  const now = processStartTime(holder.pid);
  return now !== undefined && now !== holder.processStartTime;
}

async function readHolder(storage: StorageBackend): Promise<LockHolder | undefined> {
  try {
    const text = await readSmallObject(storage, LOCK_KEY, 64 * 1024);
    return text === '' ? EMPTY_LOCK_HOLDER : (JSON.parse(text) as LockHolder);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    // An unreadable lock is still a lock: treat it as held by an unknown run.
    return {pid: 0, hostname: 'unknown', operation: 'unknown', acquiredAt: 'unknown'};
  }
}

/** The line that says a crashed run's lock was taken over, for the log. */
export function describeTakeover(holder: LockHolder): string {
  return `took over the lock left by '${holder.operation}' (pid ${holder.pid} on ${holder.hostname}, since ${holder.acquiredAt}), which is no longer running; a crashed run may have left files that the next cleanup removes`;
}

/**
 * Takes the lock object in the backup storage itself, so that two runs against the same storage
 * exclude each other (overlapping cron jobs), with a conditional put as the atomic step. A lock
 * left by a crashed run on this host is recognised by its dead PID and taken over.
 */
export async function acquireStorageLock(storage: StorageBackend, operation: string, options: LockOptions = {}): Promise<HeldLock> {
  const startTime = processStartTime(process.pid);
  const holder: LockHolder = {pid: process.pid, hostname: hostname(), operation, acquiredAt: new Date().toISOString(), ...(startTime ? {processStartTime: startTime} : {})};
  const content = `${JSON.stringify(holder)}\n`;
  let tookOverFrom: LockHolder | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      let empty = false;
      let version: ObjectInfo;
      try {
        version = await createLockObject(storage, content);
      } catch (error) {
        if (!(options.evenWhenFull && ['ENOSPC', 'EDQUOT'].includes(errnoCode(error) ?? ''))) throw error;
        version = await createLockObject(storage, '');
        empty = true;
      }
      const limitation = singleHostLimitation(storage);
      return {
        holder,
        ...(tookOverFrom ? {tookOverFrom} : {}),
        ...(limitation ? {limitation} : {}),
        async recordHolder() {
          if (!empty) return;
          // Only into our own empty lock: where the storage can, in one step.
          version = await writeSmallObject(storage, LOCK_KEY, content, {private: true, ...(atomicallyConditional(storage, version) ? {ifMatch: version.etag} : {})});
          empty = false;
        },
        async release() {
          // Never another run's: a lock taken over, or removed by hand and taken again, stays.
          await removeLockIf(storage, version, async () => {
            const current = await readHolder(storage);
            return current !== undefined && (sameHolder(current, holder) || (empty && current === EMPTY_LOCK_HOLDER));
          });
        },
      };
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw storageError(error, storage, 'create lock', LOCK_KEY);
    }
    const existingVersion = await storage.stat(LOCK_KEY).catch(() => undefined);
    const existing = await readHolder(storage);
    if (existing === undefined) continue; // released between our put and our read
    const staleHere = existing.hostname === holder.hostname && holderIsGone(existing);
    if (staleHere && attempt === 0) {
      // Runs started together after a crash (an hourly and a daily cron job) all find the same
      // stale lock. Each removing it unchecked let a late delete remove the lock another had
      // just taken, and both went on. Only one at a time checks it is still the crashed run's.
      // Where the storage compares and deletes in one step, the version read is the one removed or none.
      const removed = await removeLockIf(storage, existingVersion, async () => {
        const still = await readHolder(storage);
        return still !== undefined && sameHolder(still, existing);
      });
      if (removed) tookOverFrom = existing;
      continue;
    }
    throw new SynapseError('E_LOCKED', {
      message: `unable to start '${operation}': the backup storage '${storage.location}' is locked by ${existing.operation} (pid ${existing.pid} on ${existing.hostname}, since ${existing.acquiredAt})`,
      suggestion:
        existing === EMPTY_LOCK_HOLDER
          ? `The lock is empty: a cleanup took it on a full storage and has not finished. If no cleanup is running, remove '${LOCK_KEY}' from '${storage.location}'.`
          : `Wait for that run to finish. If it is not running any more (for example on another host that crashed), remove '${LOCK_KEY}' from '${storage.location}'.`,
      details: {lock: existing},
    });
  }
  throw new SynapseError('E_LOCKED', {message: `unable to start '${operation}': the lock on '${storage.location}' kept changing hands`});
}
