import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import {errnoCode, isSynapseError} from '../errors/index.js';
import {parseMetadata, type BackupMetadata} from '../metadata/index.js';
import {classifyKey, metadataKeyFor, type BackupNameParts} from '../naming/index.js';
import type {BackupHealth} from '../retention/index.js';
import {readSmallObject, storageError} from '../storage/index.js';

export interface CatalogEntry {
  readonly name: string;
  readonly parts: BackupNameParts;
  readonly health: BackupHealth;
  /** Present when health is 'good'. */
  readonly metadata?: BackupMetadata;
  /** The stored file, absent when health is 'data-missing'. */
  readonly object?: ObjectInfo;
  /** Why the backup is not good, for display. */
  readonly problem?: string;
}

export interface Catalog {
  /** Newest first. */
  readonly backups: readonly CatalogEntry[];
  /** Staging objects left by interrupted runs. */
  readonly leftovers: readonly ObjectInfo[];
}

function newestFirst(a: CatalogEntry, b: CatalogEntry): number {
  return b.parts.startedAt.getTime() - a.parts.startedAt.getTime() || b.parts.sequence - a.parts.sequence || (a.name < b.name ? 1 : -1);
}

/** Everything this tool wrote to the storage, sorted out; foreign objects are left out entirely. */
export async function readCatalog(storage: StorageBackend): Promise<Catalog> {
  let objects: ObjectInfo[];
  try {
    objects = await storage.list();
  } catch (error) {
    throw storageError(error, storage, 'list backups in');
  }
  const data = new Map<string, {object: ObjectInfo; parts: BackupNameParts}>();
  const metadataKeys = new Map<string, ObjectInfo>();
  const leftovers: ObjectInfo[] = [];
  for (const object of objects) {
    const kind = classifyKey(object.key);
    if (kind.kind === 'backup') data.set(kind.name, {object, parts: kind.parts});
    else if (kind.kind === 'metadata') metadataKeys.set(kind.backupName, object);
    else if (kind.kind === 'staging') leftovers.push(object);
  }

  const entries = await Promise.all(
    [...new Set([...data.keys(), ...metadataKeys.keys()])].map(async (name): Promise<CatalogEntry> => {
      const stored = data.get(name);
      const parts = stored?.parts ?? (classifyKey(name) as {parts: BackupNameParts}).parts;
      if (!stored) return {name, parts, health: 'data-missing', problem: 'backup file missing'};
      if (!metadataKeys.has(name)) return {name, parts, object: stored.object, health: 'metadata-missing', problem: 'metadata missing (incomplete or damaged)'};
      try {
        const metadata = parseMetadata(name, await readSmallObject(storage, metadataKeyFor(name)));
        return {name, parts, object: stored.object, metadata, health: 'good'};
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') return {name, parts, object: stored.object, health: 'metadata-missing', problem: 'metadata missing'};
        const reason = isSynapseError(error) ? error.message : `metadata unreadable: ${(error as Error).message}`;
        return {name, parts, object: stored.object, health: 'metadata-unreadable', problem: reason};
      }
    }),
  );
  return {backups: entries.sort(newestFirst), leftovers};
}
