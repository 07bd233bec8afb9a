import {BACKUP_TYPES, type BackupType} from '../naming/index.js';
import type {BackupFact, StatusProblem} from './evaluate-status.js';

/** What status read of one location: its good backups, or why it could not be read. */
export interface LocationView {
  readonly name: string;
  readonly location: string;
  /** Undefined when the location could not be opened or read. */
  readonly good: readonly BackupFact[] | undefined;
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
  const locations = views.map((view): LocationStatus => {
    if (!view.good) {
      problems.push({
        id: `location_unreadable:${view.name}`,
        alert: 'alert.storage_unreadable',
        level: 'unknown',
        message: `location '${view.name}' (${view.location}) could not be read, so status cannot tell what it holds: ${view.error ?? 'unknown error'}`,
      });
      return {name: view.name, location: view.location, readable: false, ...(view.error ? {error: view.error} : {}), types: [], missing: 0};
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
    return {name: view.name, location: view.location, readable: true, types, missing: [...union.keys()].filter((name) => !held.has(name)).length};
  });
  return {locations, problems};
}
