import type {StorageBackend} from '../../contracts/storage.js';
import {readCatalog, type CatalogEntry} from '../catalog/index.js';
import type {BackupHealth} from '../retention/index.js';
import type {BackupType, CompressionAlgorithm} from '../naming/index.js';

export interface ListedBackup {
  readonly name: string;
  readonly type: BackupType;
  /** When the backup started (UTC), from its metadata or else its name. */
  readonly createdAt: string;
  /** Bytes of the stored file; undefined when it is missing. */
  readonly size: number | undefined;
  readonly compression: CompressionAlgorithm;
  readonly encrypted: boolean;
  readonly health: BackupHealth;
  readonly problem: string | undefined;
  readonly database: string | undefined;
  readonly sha256: string | undefined;
}

function toListed(entry: CatalogEntry): ListedBackup {
  return {
    name: entry.name,
    type: entry.parts.type,
    createdAt: entry.metadata?.createdAt ?? entry.parts.startedAt.toISOString(),
    size: entry.metadata?.sizes.storedBytes ?? entry.object?.size,
    compression: entry.parts.compression,
    encrypted: entry.parts.encrypted,
    health: entry.health,
    problem: entry.problem,
    database: entry.metadata?.database.name,
    sha256: entry.metadata?.checksums.stored,
  };
}

/** Every backup in the storage, newest first, including the broken ones, marked as such. */
export async function listBackups(storage: StorageBackend): Promise<ListedBackup[]> {
  return (await readCatalog(storage)).backups.map(toListed);
}
