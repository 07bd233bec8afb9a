import {BACKUP_TYPES, type BackupType} from '../naming/index.js';
import type {BackupFact, StatusProblem} from './evaluate-status.js';

/** What status read of one location: its good backups, or why it could not be read. */
export interface LocationView {
  readonly name: string;
  readonly location: string;
  /** Undefined when the location could not be opened or read. */
  readonly good: readonly BackupFact[] | undefined;
  readonly error?: string;
  /**
   * Its WAL area, where status reads the archive: the keys it holds and its newest authentic
   * segment, or why it could not be read.
   */
  readonly wal?: {readonly keys: readonly string[]; readonly newest: string | undefined} | {readonly error: string};
}

/** A location's WAL area against the others': what it lacks is what backup sync would copy. */
export interface LocationWalStatus {
  /** Its newest archived segment that is authentic. */
  readonly newest?: string;
  /** Archived files some other location holds that this one lacks. */
  readonly missing?: number;
  readonly error?: string;
}

export interface LocationTypeStatus {
  readonly database: string;
  readonly type: BackupType;
  /** The newest backup of this database and type that the location holds good. */
  readonly newest: string | undefined;
  /** How many backups of this database and type, newer than that, some other location holds good and this one lacks. */
  readonly behind: number;
}

export interface LocationStatus {
  readonly name: string;
  readonly location: string;
  readonly readable: boolean;
  readonly error?: string;
  readonly types: readonly LocationTypeStatus[];
  /** Good backups some location holds that this one lacks (of the databases reported on). */
  readonly missing: number;
  /** Where status read the WAL archive and some location holds one. */
  readonly wal?: LocationWalStatus;
}

/**
 * Each location against what all of them hold together, per database and backup type: its newest
 * good backup and how many newer ones it lacks. Behind by more than one backup of a type is a
 * warning (one is a copy that may be on its way); a location that cannot be read is never OK.
 */
export function evaluateLocations(views: readonly LocationView[], databases: readonly string[]): {locations: LocationStatus[]; problems: StatusProblem[]} {
  const union = new Map<string, BackupFact>();
  for (const view of views) for (const fact of view.good ?? []) if (databases.includes(fact.database)) union.set(fact.name, fact);
  const problems: StatusProblem[] = [];
  const walUnion = new Set<string>();
  for (const view of views) if (view.wal && 'keys' in view.wal) for (const key of view.wal.keys) walUnion.add(key);
  const walOf = (view: LocationView): LocationWalStatus | undefined => {
    if (!view.wal || (walUnion.size === 0 && 'keys' in view.wal)) return undefined;
    if ('error' in view.wal) {
      problems.push({
        id: `wal_unreadable:${view.name}`,
        alert: 'alert.archive_lag',
        level: 'unknown',
        message: `the WAL archive at location '${view.name}' (${view.location}) could not be read, so status cannot tell what it lacks: ${view.wal.error}`,
      });
      return {error: view.wal.error};
    }
    const held = new Set(view.wal.keys);
    const missing = [...walUnion].filter((key) => !held.has(key)).length;
    // One file may be on its way (a push writes every location at once); more is a location left behind.
    if (missing > 1) {
      problems.push({
        id: `wal_behind:${view.name}`,
        alert: 'alert.archive_lag',
        level: 'warning',
        message: `the WAL archive at location '${view.name}' lacks ${missing} archived files that another location holds (its newest authentic segment: ${view.wal.newest ?? 'none'}); run \`synapse-backup backup sync\``,
      });
    }
    return {...(view.wal.newest ? {newest: view.wal.newest} : {}), missing};
  };
  const locations = views.map((view): LocationStatus => {
    if (!view.good) {
      problems.push({
        id: `location_unreadable:${view.name}`,
        alert: 'alert.storage_unreadable',
        level: 'unknown',
        message: `location '${view.name}' (${view.location}) could not be read, so status cannot tell what it holds: ${view.error ?? 'unknown error'}`,
      });
      const wal = walOf(view);
      return {name: view.name, location: view.location, readable: false, ...(view.error ? {error: view.error} : {}), types: [], missing: 0, ...(wal ? {wal} : {})};
    }
    const held = new Set(view.good.map((fact) => fact.name));
    const types: LocationTypeStatus[] = [];
    for (const database of databases) {
      for (const type of BACKUP_TYPES) {
        const all = [...union.values()].filter((fact) => fact.database === database && fact.type === type);
        if (all.length === 0) continue;
        const newest = view.good.filter((fact) => fact.database === database && fact.type === type).sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())[0];
        const behind = all.filter((fact) => !held.has(fact.name) && (!newest || fact.createdAt > newest.createdAt)).length;
        types.push({database, type, newest: newest?.name, behind});
        if (behind > 1) {
          problems.push({
            id: `replication_behind:${view.name}:${database}:${type}`,
            alert: 'alert.replication_behind',
            level: 'warning',
            database,
            type,
            message: `location '${view.name}' is ${behind} ${type} backups of database '${database}' behind the other locations (its newest: ${newest?.name ?? 'none'}); run \`synapse-backup backup sync\``,
          });
        }
      }
    }
    const wal = walOf(view);
    return {name: view.name, location: view.location, readable: true, types, missing: [...union.keys()].filter((name) => !held.has(name)).length, ...(wal ? {wal} : {})};
  });
  return {locations, problems};
}
