import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import {errnoCode, isSynapseError} from '../errors/index.js';
import {MAX_METADATA_BYTES, parseMetadata, type BackupMetadata, type DocumentAuthenticator} from '../metadata/index.js';
import {CATALOG_PREFIXES, classifyKey, metadataKeyFor, type BackupNameParts} from '../naming/index.js';
import type {BackupHealth} from '../retention/index.js';
import {listAll, readSmallObject, storageError} from '../storage/index.js';
import {decideTrust, UNSIGNED_FLAG} from '../trust/index.js';
import {readVerificationState, type VerificationRecord} from '../verification/index.js';

/** A check's probe older than this was left by a check that was killed; a younger one may still be read back. */
const PROBE_MAX_AGE_MS = 3_600_000;

export interface CatalogEntry {
  readonly name: string;
  readonly parts: BackupNameParts;
  readonly health: BackupHealth;
  /** Present when the metadata is complete, and authentic or unsigned: never for a forged document. */
  readonly metadata?: BackupMetadata;
  /** The stored file, absent when health is 'data-missing'. */
  readonly object?: ObjectInfo;
  /** Why the backup is not good, for display. */
  readonly problem?: string;
  /** A verification record that still vouches for the stored file as it is. */
  readonly verification?: VerificationRecord;
  /** A marker of a run that had not finished: its metadata was not written yet. */
  readonly pending: boolean;
  /** A verification record is stored, current or not. */
  readonly hasVerificationRecord: boolean;
  /**
   * The metadata could not be read for a reason of the storage's (EACCES, EIO), not of its
   * content: whoever reads this catalog cannot see whether the backup is good.
   */
  readonly unreadable?: string;
}

export interface Catalog {
  /** Newest first. */
  readonly backups: readonly CatalogEntry[];
  /** Staging objects left by interrupted runs, and verification records of backups that are gone. */
  readonly leftovers: readonly ObjectInfo[];
}

export interface CatalogOptions {
  /** With a key configured: metadata without a right MAC is never taken for good. */
  readonly authenticator?: DocumentAuthenticator;
}

function newestFirst(a: CatalogEntry, b: CatalogEntry): number {
  return b.parts.startedAt.getTime() - a.parts.startedAt.getTime() || b.parts.sequence - a.parts.sequence || (a.name < b.name ? 1 : -1);
}

type Judged = Omit<CatalogEntry, 'name' | 'parts' | 'object' | 'pending' | 'hasVerificationRecord'>;

/** Errors that say the metadata was not read at all, as opposed to read and found wanting. */
function isReadFailure(error: unknown): boolean {
  return !isSynapseError(error) && errnoCode(error) !== undefined && errnoCode(error) !== 'EFBIG';
}

async function judgeMetadata(storage: StorageBackend, name: string, object: ObjectInfo, options: CatalogOptions): Promise<Judged> {
  let metadata: BackupMetadata;
  try {
    metadata = parseMetadata(name, await readSmallObject(storage, metadataKeyFor(name), MAX_METADATA_BYTES));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return {health: 'metadata-missing', problem: 'metadata missing'};
    const reason = isSynapseError(error) ? error.message : `metadata unreadable: ${(error as Error).message}`;
    return {health: 'metadata-unreadable', problem: reason, ...(isReadFailure(error) ? {unreadable: errnoCode(error)!} : {})};
  }
  const trust = await decideTrust(metadata, {authenticator: options.authenticator});
  if (trust.verdict === 'refused') {
    if (trust.why === 'unencrypted') return {health: 'unsigned', metadata, problem: 'not authenticated: written without a key (restorable with --allow-unencrypted), not counted as a good backup'};
    if (trust.why === 'unsigned') return {health: 'unsigned', metadata, problem: `metadata has no MAC, so it is not authenticated (restorable with ${UNSIGNED_FLAG}), not counted as a good backup`};
    return {health: 'forged', problem: `metadata not authentic: ${trust.reason}`};
  }
  if (object.size !== metadata.sizes.storedBytes) {
    return {health: 'damaged', metadata, problem: `the stored file has ${object.size} bytes, the metadata records ${metadata.sizes.storedBytes}`};
  }
  const verification = await readVerificationState(storage, metadata, object, options.authenticator);
  if (verification.failed) {
    return {health: 'damaged', metadata, problem: `its last verification failed (${verification.failed.verifiedAt}): ${verification.failed.failure ?? 'damaged'}`};
  }
  return {health: 'good', metadata, ...(verification.passed ? {verification: verification.passed} : {})};
}

/**
 * Everything this tool wrote to the storage, sorted out; foreign objects are left out entirely.
 * A backup is 'good' only when its stored file is a regular file of the recorded size and its
 * metadata is complete and (with a key) authentic; nothing is taken on the metadata's word alone.
 */
export async function readCatalog(storage: StorageBackend, options: CatalogOptions = {}): Promise<Catalog> {
  let objects: ObjectInfo[];
  try {
    // Only what is ours to sort out, a page at a time: not the WAL archive, not a foreign file.
    objects = await listAll(storage, CATALOG_PREFIXES);
  } catch (error) {
    throw storageError(error, storage, 'list backups in');
  }
  const data = new Map<string, {object: ObjectInfo; parts: BackupNameParts}>();
  const metadataKeys = new Set<string>();
  const pending = new Set<string>();
  const verificationRecords = new Map<string, ObjectInfo>();
  const leftovers: ObjectInfo[] = [];
  for (const object of objects) {
    const kind = classifyKey(object.key);
    if (kind.kind === 'backup') data.set(kind.name, {object, parts: kind.parts});
    else if (kind.kind === 'metadata') metadataKeys.add(kind.backupName);
    else if (kind.kind === 'pending') pending.add(kind.backupName);
    else if (kind.kind === 'verification') verificationRecords.set(kind.backupName, object);
    else if (kind.kind === 'staging') leftovers.push(object);
    // A check running right now may still read its probe back; only an old one was left by a killed check.
    else if (kind.kind === 'probe' && Date.now() - object.modifiedAt.getTime() > PROBE_MAX_AGE_MS) leftovers.push(object);
  }

  const entries = await Promise.all(
    [...new Set([...data.keys(), ...metadataKeys, ...pending])].map(async (name): Promise<CatalogEntry> => {
      const stored = data.get(name);
      const parts = stored?.parts ?? (classifyKey(name) as {parts: BackupNameParts}).parts;
      const base = {name, parts, pending: pending.has(name), hasVerificationRecord: verificationRecords.has(name)};
      if (!metadataKeys.has(name) && base.pending) {
        return {...base, ...(stored ? {object: stored.object} : {}), health: 'incomplete', problem: 'unfinished: its run was killed or is still running'};
      }
      if (!stored) return {...base, health: 'data-missing', problem: 'backup file missing'};
      if (!metadataKeys.has(name)) return {...base, object: stored.object, health: 'metadata-missing', problem: 'metadata missing (lost or damaged)'};
      const judged = await judgeMetadata(storage, name, stored.object, options);
      // On a storage that may show a put before it is done, metadata that will not parse while its
      // run is still marked is being written, not damaged.
      if (base.pending && !storage.capabilities.atomicPut && judged.health === 'metadata-unreadable' && judged.unreadable === undefined) {
        return {...base, object: stored.object, health: 'incomplete', problem: 'unfinished: its metadata is still being written, or its run was killed'};
      }
      return {...base, object: stored.object, ...judged};
    }),
  );
  // A record whose backup is gone entirely: what a removal killed after its metadata left.
  for (const [name, object] of verificationRecords) if (!data.has(name) && !metadataKeys.has(name) && !pending.has(name)) leftovers.push(object);
  return {backups: entries.sort(newestFirst), leftovers};
}
