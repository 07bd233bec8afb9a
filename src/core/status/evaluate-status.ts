import type {StorageSpace} from '../../contracts/storage.js';
import {JOURNAL_OPERATIONS, type JournalEntry, type JournalOperation} from '../journal/index.js';
import {BACKUP_METHODS, BACKUP_TYPES, methodOfBackup, parseBackupName, type BackupMethod, type BackupType} from '../naming/index.js';
import {formatAge} from '../units/index.js';
import {evaluateArchive, type ArchiveInput, type ArchivePolicy, type ArchiveStatus} from './evaluate-archive.js';

/**
 * Monitoring verdicts, in the Nagios plugin convention, so that `status` drops into Nagios, Icinga
 * or a cron check as it is: the exit status is the index.
 */
export const STATUS_LEVELS = ['ok', 'warning', 'critical', 'unknown'] as const;
export type StatusLevel = (typeof STATUS_LEVELS)[number];

export function exitStatusOf(level: StatusLevel): number {
  return STATUS_LEVELS.indexOf(level);
}

/** One good backup as status sees it: from its authenticated (or, without a key, parsed) metadata. */
export interface BackupFact {
  readonly name: string;
  readonly database: string;
  readonly type: BackupType;
  readonly createdAt: Date;
  readonly completedAt: Date;
  readonly storedBytes: number;
  readonly durationMs: number;
  /** Until when the storage refuses to delete it (S3 Object Lock), where known: asked for the newest backups only. */
  readonly retainedUntil?: Date;
}

export interface StatusPolicy {
  /** The types to check; undefined: every type with at least one backup of the database. */
  readonly types: readonly BackupType[] | undefined;
  readonly maxAgeMs: Readonly<Record<BackupType, number>>;
  /** Warn under this share of free space at the backup location, in percent. */
  readonly minFreePercent: number;
  /** Warn when the newest backup is smaller than this fraction of the median of the previous ones. */
  readonly minSizeRatio: number;
  /** How many previous backups the median is taken over. */
  readonly sizeWindow: number;
  /** How old the newest archived WAL may be while WAL waits (see evaluateArchive). */
  readonly archive: ArchivePolicy;
  /** BACKUP_ALERT_RESTORE_TEST_AGE: warn when the last successful restore test of a method is older. */
  readonly restoreTestMaxAgeMs: number;
}

export const DEFAULT_STATUS_POLICY: StatusPolicy = {
  types: undefined,
  maxAgeMs: {hourly: 2 * 3_600_000, daily: 26 * 3_600_000, monthly: 32 * 86_400_000},
  minFreePercent: 20,
  minSizeRatio: 0.5,
  sizeWindow: 7,
  archive: {warnAfterMs: undefined, criticalAfterMs: undefined},
  restoreTestMaxAgeMs: 7 * 86_400_000,
};

/** The alerts `status --notify` sends; each problem carries the one it raises. */
export type AlertName =
  | 'alert.backup_overdue'
  | 'alert.disk_low'
  | 'alert.backup_size_drop'
  | 'alert.backup_failed'
  | 'alert.restore_test_failed'
  | 'alert.storage_unreadable'
  | 'alert.replication_behind'
  | 'alert.archive_lag';

export interface StatusProblem {
  /** Stable while the problem stands (e.g. `backup_overdue:shop:daily`): what de-duplication keys on. */
  readonly id: string;
  readonly alert: AlertName;
  /** 'unknown': status could not see what it checks (storage it cannot read), which is never OK. */
  readonly level: 'warning' | 'critical' | 'unknown';
  readonly message: string;
  readonly database?: string;
  readonly type?: BackupType;
}

export interface TypeStatus {
  readonly database: string;
  readonly type: BackupType;
  readonly newest: BackupFact | undefined;
  readonly ageMs: number | undefined;
  readonly maxAgeMs: number;
  readonly overdue: boolean;
  /** Sizes and durations of the last backups, oldest first, the newest last. */
  readonly trend: {readonly storedBytes: readonly number[]; readonly durationsMs: readonly number[]};
  /** The newest backup's size over the median of the previous ones; undefined with fewer than two backups. */
  readonly sizeRatio: number | undefined;
  /** The newest backup is under the policy's fraction of that median. */
  readonly sizeDrop: boolean;
}

export interface RunFact {
  readonly operation: JournalOperation;
  readonly finishedAt: string;
  readonly host: string;
  readonly database?: string;
  readonly backupName?: string;
  readonly backupType?: string;
  readonly error?: {readonly code: string; readonly message: string};
}

export interface StatusReport {
  readonly level: StatusLevel;
  readonly checkedAt: string;
  readonly types: readonly TypeStatus[];
  readonly storage: {readonly location: string; readonly freeBytes: number | undefined; readonly totalBytes: number | undefined; readonly freeRatio: number | undefined};
  readonly lastFailures: readonly RunFact[];
  readonly lastSuccess: {readonly verify: RunFact | undefined; readonly restoreTest: RunFact | undefined};
  /** The last successful restore test of each method: a load of a dump (logical), a recovery drill (physical). */
  readonly restoreTests: Readonly<Record<BackupMethod, RunFact | undefined>>;
  /** Failures so far per operation, from the journal's carried counters. */
  readonly failureCounts: Readonly<Record<JournalOperation, number>>;
  readonly problems: readonly StatusProblem[];
  /** Journal entries that could not be read or authenticated, and were ignored. */
  readonly rejectedJournalEntries: number;
  /** The WAL archive, where the primary location holds one (or BACKUP_ALERT_WAL_AGE_* says one is expected). */
  readonly archive?: ArchiveStatus;
}

/** A backup in the storage that is not good: status must not pass over it in silence. */
export interface UnusableBackup {
  /** From its metadata where that could be parsed; undefined when nothing can be told. */
  readonly database: string | undefined;
  /** Why it does not count, in words for the message ("not authentic", "damaged"). */
  readonly reason: string;
  /** Its metadata could not be read at all (EACCES, EIO): the storage hides whether it is good. */
  readonly unreadable?: string;
}

export interface StatusInput {
  readonly now: Date;
  /** Backups present that are not good (forged, another key's, unsigned, damaged, unreadable). */
  readonly unusable: readonly UnusableBackup[];
  /** The databases to report on; backups of others are ignored. */
  readonly databases: readonly string[];
  readonly backups: readonly BackupFact[];
  /** Newest first. */
  readonly journal: readonly JournalEntry[];
  readonly rejectedJournalEntries: number;
  readonly location: string;
  readonly space: StorageSpace | undefined;
  readonly policy: StatusPolicy;
  /** What the WAL area and the server say about archiving; absent where there is no archive to judge. */
  readonly archive?: Omit<ArchiveInput, 'now' | 'policy'>;
}

const TREND_LENGTH = 8;

/** `; the storage holds 3 backups that do not count (2 not authentic, 1 damaged)`, or nothing. */
function unusableSummary(input: StatusInput, database: string | undefined): string {
  const relevant = input.unusable.filter((backup) => database === undefined || backup.database === undefined || backup.database === database);
  if (relevant.length === 0) return '';
  const counts = new Map<string, number>();
  for (const backup of relevant) counts.set(backup.reason, (counts.get(backup.reason) ?? 0) + 1);
  const parts = [...counts].map(([reason, count]) => `${count} ${reason}`).join(', ');
  return `; '${input.location}' holds ${relevant.length} backup${relevant.length === 1 ? '' : 's'} that do${relevant.length === 1 ? 'es' : ''} not count (${parts})`;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** A run's method, by its backup's name: physical backups are the tar ones. */
function methodOfRun(entry: JournalEntry): BackupMethod {
  const parts = entry.backupName ? parseBackupName(entry.backupName) : undefined;
  return parts ? methodOfBackup(parts) : 'logical';
}

const toRunFact = (entry: JournalEntry): RunFact => ({
  operation: entry.operation,
  finishedAt: entry.finishedAt,
  host: entry.host,
  ...(entry.database ? {database: entry.database} : {}),
  ...(entry.backupName ? {backupName: entry.backupName} : {}),
  ...(entry.backupType ? {backupType: entry.backupType} : {}),
  ...(entry.error ? {error: entry.error} : {}),
});

function judgeType(input: StatusInput, database: string, type: BackupType, problems: StatusProblem[]): TypeStatus {
  const {policy, now} = input;
  const ofType = input.backups.filter((backup) => backup.database === database && backup.type === type).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  const newest = ofType.at(-1);
  const maxAgeMs = policy.maxAgeMs[type];
  const ageMs = newest ? now.getTime() - newest.completedAt.getTime() : undefined;
  const overdue = ageMs === undefined || ageMs > maxAgeMs;
  if (overdue) {
    problems.push({
      id: `backup_overdue:${database}:${type}`,
      alert: 'alert.backup_overdue',
      level: 'critical',
      database,
      type,
      message: newest
        ? `the newest good ${type} backup of database '${database}' is ${formatAge(ageMs!)} old (${newest.name}); one is due every ${formatAge(maxAgeMs)}`
        : `database '${database}' has no good ${type} backup${unusableSummary(input, database)}`,
    });
  }
  const previous = ofType.slice(0, -1).slice(-policy.sizeWindow);
  let sizeRatio: number | undefined;
  let sizeDrop = false;
  if (newest && previous.length > 0) {
    const typical = median(previous.map((backup) => backup.storedBytes));
    sizeRatio = typical > 0 ? newest.storedBytes / typical : undefined;
    sizeDrop = sizeRatio !== undefined && sizeRatio < policy.minSizeRatio;
    if (sizeDrop) {
      problems.push({
        id: `backup_size_drop:${database}:${type}:${newest.name}`,
        alert: 'alert.backup_size_drop',
        level: 'warning',
        database,
        type,
        message: `the newest ${type} backup of database '${database}' (${newest.name}, ${newest.storedBytes} bytes) is ${Math.round(sizeRatio! * 100)}% of the median of the ${previous.length} before it (${Math.round(typical)} bytes): check for a dropped table, an emptied schema or a wrong database`,
      });
    }
  }
  const recent = ofType.slice(-TREND_LENGTH);
  return {
    database,
    type,
    newest,
    ageMs,
    maxAgeMs,
    overdue,
    trend: {storedBytes: recent.map((backup) => backup.storedBytes), durationsMs: recent.map((backup) => backup.durationMs)},
    sizeRatio,
    sizeDrop,
  };
}

/** What is known to be bad outranks what cannot be seen; what cannot be seen outranks a warning. */
export function levelOf(problems: readonly StatusProblem[]): StatusLevel {
  if (problems.some((problem) => problem.level === 'critical')) return 'critical';
  if (problems.some((problem) => problem.level === 'unknown')) return 'unknown';
  return problems.length > 0 ? 'warning' : 'ok';
}

/**
 * The whole monitoring verdict from what the storage holds: per database and backup type the
 * newest good backup and whether it is overdue, the size trend and a drop in it, free space, and
 * from the run journal the latest failures and the last good verify and restore test. Pure.
 */
export function evaluateStatus(input: StatusInput): StatusReport {
  const {policy, now} = input;
  const problems: StatusProblem[] = [];
  const types: TypeStatus[] = [];
  for (const database of input.databases) {
    const present = new Set(input.backups.filter((backup) => backup.database === database).map((backup) => backup.type));
    const checked = policy.types ?? BACKUP_TYPES.filter((type) => present.has(type));
    for (const type of BACKUP_TYPES) if (checked.includes(type)) types.push(judgeType(input, database, type, problems));
    // No type to check because there is no good backup at all: the worst case, never "all current".
    if (checked.length === 0) {
      problems.push({
        id: `no_good_backup:${database}`,
        alert: 'alert.backup_overdue',
        level: 'critical',
        database,
        message: `database '${database}' has no good backup in '${input.location}'${unusableSummary(input, database)}`,
      });
    }
  }
  if (input.databases.length === 0) {
    problems.push({
      id: 'no_good_backup',
      alert: 'alert.backup_overdue',
      level: 'critical',
      message: `'${input.location}' holds no good backup of any database${unusableSummary(input, undefined)}`,
    });
  }
  const unreadable = input.unusable.filter((backup) => backup.unreadable !== undefined);
  if (unreadable.length > 0) {
    problems.push({
      id: 'storage_unreadable',
      alert: 'alert.storage_unreadable',
      level: 'unknown',
      message: `unable to read the metadata of ${unreadable.length} backup${unreadable.length === 1 ? '' : 's'} in '${input.location}' (${[...new Set(unreadable.map((backup) => backup.unreadable))].join(', ')}), so status cannot tell whether ${unreadable.length === 1 ? 'it is' : 'they are'} good: give this user read access to the backup storage`,
    });
  }

  const freeRatio = input.space && input.space.totalBytes > 0 ? input.space.freeBytes / input.space.totalBytes : undefined;
  if (freeRatio !== undefined && freeRatio * 100 < policy.minFreePercent) {
    problems.push({
      id: 'disk_low',
      alert: 'alert.disk_low',
      level: 'warning',
      message: `the backup location '${input.location}' has ${(freeRatio * 100).toFixed(1)}% free space (${input.space!.freeBytes} of ${input.space!.totalBytes} bytes), under ${policy.minFreePercent}%`,
    });
  }

  const relevant = input.journal.filter((entry) => entry.database === undefined || input.databases.includes(entry.database));
  // The newest run of each backup type, and the newest restore test, decide whether a failure stands.
  const newestBackupRun = new Map<string, JournalEntry>();
  for (const entry of relevant) {
    if (entry.operation !== 'backup') continue;
    const key = `${entry.database ?? ''}:${entry.backupType ?? ''}`;
    if (!newestBackupRun.has(key)) newestBackupRun.set(key, entry);
  }
  for (const entry of newestBackupRun.values()) {
    if (entry.outcome !== 'failed') continue;
    problems.push({
      id: `backup_failed:${entry.database ?? ''}:${entry.backupType ?? ''}`,
      alert: 'alert.backup_failed',
      level: 'warning',
      ...(entry.database ? {database: entry.database} : {}),
      ...(entry.backupType && (BACKUP_TYPES as readonly string[]).includes(entry.backupType) ? {type: entry.backupType as BackupType} : {}),
      message: `the last ${entry.backupType ?? ''} backup run${entry.database ? ` of database '${entry.database}'` : ''} failed at ${entry.finishedAt} on ${entry.host}: ${entry.error?.code ?? 'failed'} ${entry.error?.message ?? ''}`.replaceAll(/\s+/g, ' ').trim(),
    });
  }
  // Per method: a drill of physical backups and a load of logical ones prove different things, and one passing hides nothing about the other.
  const restoreTests = {} as Record<BackupMethod, RunFact | undefined>;
  for (const method of BACKUP_METHODS) {
    const ofMethod = relevant.filter((entry) => entry.operation === 'restore-test' && methodOfRun(entry) === method);
    const last = ofMethod[0];
    const lastSuccess = ofMethod.find((entry) => entry.outcome === 'succeeded');
    restoreTests[method] = lastSuccess && toRunFact(lastSuccess);
    const what = method === 'physical' ? 'restore drill (a recovery of a physical backup)' : 'restore test';
    if (last?.outcome === 'failed') {
      problems.push({
        id: method === 'logical' ? 'restore_test_failed' : `restore_test_failed:${method}`,
        alert: 'alert.restore_test_failed',
        level: 'warning',
        ...(last.database ? {database: last.database} : {}),
        message: `the last ${what}${last.backupName ? ` (of ${last.backupName})` : ''} failed at ${last.finishedAt}: ${last.error?.code ?? ''} ${last.error?.message ?? ''}`.trim(),
      });
    } else if (lastSuccess && now.getTime() - Date.parse(lastSuccess.finishedAt) > policy.restoreTestMaxAgeMs) {
      problems.push({
        id: `restore_test_stale:${method}`,
        alert: 'alert.restore_test_failed',
        level: 'warning',
        message: `the last successful ${what} finished at ${lastSuccess.finishedAt}, ${formatAge(now.getTime() - Date.parse(lastSuccess.finishedAt))} ago, more than ${formatAge(policy.restoreTestMaxAgeMs)} (BACKUP_ALERT_RESTORE_TEST_AGE): run \`synapse-backup backup test-restore --latest${method === 'physical' ? ' --method physical' : ''}\``,
      });
    }
  }

  const failures = relevant.filter((entry) => entry.outcome === 'failed' && ['backup', 'verify', 'restore-test'].includes(entry.operation)).slice(0, 5);
  const success = (operation: JournalOperation): RunFact | undefined => {
    const found = relevant.find((entry) => entry.operation === operation && entry.outcome === 'succeeded');
    return found && toRunFact(found);
  };
  const failureCounts = Object.fromEntries(
    JOURNAL_OPERATIONS.map((operation) => [operation, input.journal.find((entry) => entry.operation === operation && entry.outcome === 'failed')?.failureCount ?? 0]),
  ) as Record<JournalOperation, number>;
  const archive = input.archive ? evaluateArchive({...input.archive, now, policy: policy.archive}) : undefined;
  if (archive) problems.push(...archive.problems);
  return {
    level: levelOf(problems),
    checkedAt: now.toISOString(),
    types,
    storage: {location: input.location, freeBytes: input.space?.freeBytes, totalBytes: input.space?.totalBytes, freeRatio},
    lastFailures: failures.map(toRunFact),
    lastSuccess: {verify: success('verify'), restoreTest: success('restore-test')},
    restoreTests,
    failureCounts,
    problems,
    rejectedJournalEntries: input.rejectedJournalEntries,
    ...(archive ? {archive: archive.archive} : {}),
  };
}
