import type {StorageBackend} from '../../contracts/storage.js';
import {readCatalog, type CatalogEntry} from '../catalog/index.js';
import type {DocumentAuthenticator} from '../metadata/index.js';
import type {BackupHealth} from '../retention/index.js';
import {methodOfBackup, type BackupMethod, type BackupType, type CompressionAlgorithm} from '../naming/index.js';
import {firstGoodCopy, locateBackups, readLocationCatalogs, type CopyState, type Location} from '../replication/index.js';

export interface ListedBackup {
  readonly name: string;
  readonly type: BackupType;
  /** The database it was taken from, per its metadata; undefined when the metadata cannot be trusted or read. */
  readonly database: string | undefined;
  /** When the backup started (UTC), from its metadata or else its name. */
  readonly createdAt: string;
  /** Bytes of the stored file; undefined when it is missing. */
  readonly size: number | undefined;
  readonly compression: CompressionAlgorithm;
  readonly encrypted: boolean;
  readonly health: BackupHealth;
  readonly problem: string | undefined;
  readonly sha256: string | undefined;
  /** When its stored file was last read back whole and found intact, if it was. */
  readonly verifiedAt: string | undefined;
  readonly method: BackupMethod;
  /** A physical backup's WAL range: a recovery target must lie after its stop; null for a logical backup, or where the metadata cannot be read. */
  readonly wal: {readonly timeline: number; readonly startLsn: string; readonly stopLsn: string; readonly stoppedAt: string} | null;
  /** With several locations: how each holds it, in the configured order. */
  readonly locations?: readonly {readonly location: string; readonly state: CopyState; readonly problem?: string}[];
}

export interface ListBackupsOptions {
  readonly authenticator?: DocumentAuthenticator;
  /** Only this database's backups (and those whose database cannot be told); all when undefined. */
  readonly database?: string;
}

function toListed(entry: CatalogEntry): ListedBackup {
  return {
    name: entry.name,
    type: entry.parts.type,
    database: entry.metadata?.database.name,
    createdAt: entry.metadata?.createdAt ?? entry.parts.startedAt.toISOString(),
    size: entry.object?.size,
    compression: entry.parts.compression,
    encrypted: entry.parts.encrypted,
    health: entry.health,
    problem: entry.problem,
    sha256: entry.metadata?.checksums.stored,
    verifiedAt: entry.verification?.verifiedAt,
    method: methodOfBackup(entry.parts),
    wal: entry.metadata?.physical ? {timeline: entry.metadata.physical.timeline, startLsn: entry.metadata.physical.startLsn, stopLsn: entry.metadata.physical.stopLsn, stoppedAt: entry.metadata.physical.stoppedAt} : null,
  };
}

/**
 * The backups in the storage, newest first, including the broken ones, marked as such. Runs that
 * have not finished (or were killed) are left out, like their staging files.
 */
export async function listBackups(storage: StorageBackend, options: ListBackupsOptions = {}): Promise<ListedBackup[]> {
  const {backups} = await readCatalog(storage, {authenticator: options.authenticator});
  return backups
    .filter((entry) => entry.health !== 'incomplete')
    .map(toListed)
    .filter((backup) => shownFor(backup, options.database));
}

/** A physical backup holds every database of its cluster: it is listed whichever database is configured. */
function shownFor(backup: ListedBackup, database: string | undefined): boolean {
  return database === undefined || backup.database === undefined || backup.database === database || backup.method === 'physical';
}

/**
 * The backups of every location, newest first, each with how every location holds it. What a
 * backup is (its database, size, checksum) comes from its first good copy, or, where none is
 * good, from the first location that holds anything of it.
 */
export async function listLocatedBackups(locations: readonly Location[], options: ListBackupsOptions & {readonly onWarning?: (message: string) => void} = {}): Promise<ListedBackup[]> {
  const catalogs = await readLocationCatalogs(locations, options.authenticator);
  for (const catalog of catalogs) if ('error' in catalog) options.onWarning?.(`location '${catalog.location}' could not be read: ${catalog.error.message}`);
  return locateBackups(catalogs)
    .map((backup): ListedBackup | undefined => {
      const shown = firstGoodCopy(backup).copy?.entry ?? backup.copies.find((copy) => copy.entry && copy.entry.health !== 'incomplete')?.entry;
      return shown ? {...toListed(shown), locations: backup.copies.map((copy) => ({location: copy.location, state: copy.state, ...(copy.problem === undefined ? {} : {problem: copy.problem})}))} : undefined;
    })
    .filter((backup): backup is ListedBackup => backup !== undefined)
    .filter((backup) => shownFor(backup, options.database));
}
