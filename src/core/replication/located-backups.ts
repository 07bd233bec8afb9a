import type {Catalog, CatalogEntry} from '../catalog/index.js';
import type {BackupHealth} from '../retention/index.js';

/** How one location holds one backup, as `backup list --json` says it. */
export type CopyState = 'good' | 'missing' | 'damaged' | 'not authentic' | 'unreadable';

const STATE_OF: Readonly<Record<BackupHealth, CopyState>> = {
  good: 'good',
  damaged: 'damaged',
  'metadata-unreadable': 'damaged',
  forged: 'not authentic',
  unsigned: 'not authentic',
  incomplete: 'missing',
  'data-missing': 'missing',
  'metadata-missing': 'missing',
};

export function copyStateOf(entry: CatalogEntry | undefined): CopyState {
  if (!entry) return 'missing';
  // Unreadable for a reason of the storage's (EACCES, EIO): nobody can tell what it holds.
  if (entry.unreadable !== undefined) return 'unreadable';
  return STATE_OF[entry.health];
}

/** A location's catalog, or why there is none. */
export type LocationCatalog = {readonly location: string; readonly catalog: Catalog} | {readonly location: string; readonly error: Error};

export interface LocatedCopy {
  readonly location: string;
  readonly state: CopyState;
  /** That location's entry; absent where it holds nothing of this backup or could not be read. */
  readonly entry?: CatalogEntry;
  /** Why the copy is not good, for display. */
  readonly problem?: string;
}

export interface LocatedBackup {
  readonly name: string;
  /** One per location, in the configured order. */
  readonly copies: readonly LocatedCopy[];
}

/**
 * Every backup any location holds, each with its state at every location, newest first. A
 * location that could not be read at all says 'unreadable' for each backup: it may hold them.
 */
export function locateBackups(catalogs: readonly LocationCatalog[]): LocatedBackup[] {
  const entries = new Map<string, CatalogEntry>();
  const byLocation = catalogs.map((catalog) => ('catalog' in catalog ? new Map(catalog.catalog.backups.map((entry) => [entry.name, entry])) : undefined));
  for (const catalog of catalogs) if ('catalog' in catalog) for (const entry of catalog.catalog.backups) if (!entries.has(entry.name)) entries.set(entry.name, entry);
  const newestFirst = [...entries.values()].sort((a, b) => b.parts.startedAt.getTime() - a.parts.startedAt.getTime() || b.parts.sequence - a.parts.sequence || (a.name < b.name ? 1 : -1));
  return newestFirst.map((first) => ({
    name: first.name,
    copies: catalogs.map((catalog, index): LocatedCopy => {
      const held = byLocation[index];
      if (!held) return {location: catalog.location, state: 'unreadable', problem: `the location could not be read: ${(catalog as {error: Error}).error.message}`};
      const entry = held.get(first.name);
      const state = copyStateOf(entry);
      return {location: catalog.location, state, ...(entry ? {entry} : {}), ...(state === 'good' ? {} : {problem: entry?.problem ?? 'not there'})};
    }),
  }));
}

/** The first good copy in the configured order, and why each location before it was passed over. */
export function firstGoodCopy(backup: LocatedBackup): {readonly copy: LocatedCopy | undefined; readonly skipped: readonly LocatedCopy[]} {
  const index = backup.copies.findIndex((copy) => copy.state === 'good');
  return index === -1 ? {copy: undefined, skipped: backup.copies} : {copy: backup.copies[index], skipped: backup.copies.slice(0, index)};
}

