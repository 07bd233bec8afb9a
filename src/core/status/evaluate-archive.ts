import type {ArchiverState} from '../postgres/archiver-state.js';
import {formatAge} from '../units/index.js';
import type {ArchiveFacts} from '../wal/archive-facts.js';
import type {StatusProblem} from './evaluate-status.js';

export interface ArchivePolicy {
  /** BACKUP_ALERT_WAL_AGE_WARNING; undefined: twice archive_timeout, at least 5 minutes. */
  readonly warnAfterMs: number | undefined;
  /** BACKUP_ALERT_WAL_AGE_CRITICAL; undefined: five times archive_timeout, at least 15 minutes. */
  readonly criticalAfterMs: number | undefined;
}

export interface ArchiveStatus {
  readonly location: string;
  readonly files: number;
  /** The newest archived segment that is authentic, when the storage took it, and its age: the data at risk, at most. */
  readonly newest: {readonly file: string; readonly archivedAt: string; readonly ageMs: number} | undefined;
  /** Newer segments that are not good copies, and were not taken for progress. */
  readonly rejected: number;
  readonly warnAfterMs: number;
  readonly criticalAfterMs: number;
  /** What the server said (pg_stat_archiver), or why it was not heard. */
  readonly server: (Omit<ArchiverState, 'lastArchivedAt' | 'lastFailedAt'> & {readonly lastArchivedAt?: string; readonly lastFailedAt?: string}) | {readonly unavailable: string};
}

export interface ArchiveInput {
  readonly now: Date;
  readonly facts: ArchiveFacts;
  readonly server: ArchiverState | {readonly unavailable: string};
  readonly policy: ArchivePolicy;
}

const MINUTE = 60_000;

/**
 * The recovery point as status sees it: how old the newest authentic archived segment is, and,
 * where the server answers, whether its archiver fails, lags or archives somewhere else. An idle
 * server archives nothing, so age alone is only judged where the server cannot say that nothing
 * waits; what cannot be authenticated is never taken for progress. Pure.
 */
export function evaluateArchive(input: ArchiveInput): {archive: ArchiveStatus; problems: StatusProblem[]} {
  const {facts, server, now} = input;
  const answered = 'unavailable' in server ? undefined : server;
  const timeout = answered?.archiveTimeoutMs ?? 0;
  const warnAfterMs = input.policy.warnAfterMs ?? Math.max(5 * MINUTE, 2 * timeout);
  const criticalAfterMs = Math.max(warnAfterMs, input.policy.criticalAfterMs ?? Math.max(15 * MINUTE, 5 * timeout));
  const ageMs = facts.newest ? now.getTime() - facts.newest.archivedAt.getTime() : undefined;
  const problems: StatusProblem[] = [];
  const problem = (id: string, level: StatusProblem['level'], message: string): void => {
    problems.push({id: `archive_${id}`, alert: 'alert.archive_lag', level, message});
  };
  const where = `the WAL archive at '${facts.location}'`;

  if (!facts.newest) {
    if (facts.rejected.length > 0) {
      problem('unauthentic', 'critical', `${where} holds no segment that can be authenticated: the newest ${facts.rejected.length} are not good copies (${facts.rejected[0]!.key}: ${facts.rejected[0]!.reason})`);
    } else {
      problem('empty', 'warning', `${where} holds no archived segment yet`);
    }
  } else if (facts.rejected.length > 0) {
    problem('unauthentic', 'warning', `${where} holds ${facts.rejected.length} segment${facts.rejected.length === 1 ? '' : 's'} newer than ${facts.newest.file} that ${facts.rejected.length === 1 ? 'is not a good copy' : 'are not good copies'} (${facts.rejected[0]!.key}: ${facts.rejected[0]!.reason})`);
  }

  if (answered) {
    if (answered.archiveMode === 'off') problem('off', 'critical', `the server has archive_mode = off: no WAL reaches ${where}`);
    if (answered.lastFailedAt && (!answered.lastArchivedAt || answered.lastFailedAt > answered.lastArchivedAt)) {
      problem('failing', 'critical', `the server's archiver fails: the last attempt, for ${answered.lastFailedWal ?? '?'} at ${answered.lastFailedAt.toISOString()}, failed (${answered.failedCount} failures since the statistics were reset); see the server log`);
    }
    if (answered.lastArchivedWal && /^[0-9A-F]{24}$/.test(answered.lastArchivedWal) && facts.newest && answered.lastArchivedWal > facts.newest.file) {
      problem('elsewhere', 'critical', `the server has archived up to ${answered.lastArchivedWal}, but the newest authentic segment in ${where} is ${facts.newest.file}: archive_command writes elsewhere, or files were removed`);
    }
  }
  // Age is data at risk only while WAL waits; an idle server that the server itself says is idle is fine.
  const waiting = answered ? answered.pendingSegments > 0 : true;
  if (ageMs !== undefined && waiting && ageMs > warnAfterMs) {
    const pending = answered ? `${answered.pendingSegments} segment${answered.pendingSegments === 1 ? '' : 's'} wait for the archiver` : `the server was not asked (${(server as {unavailable: string}).unavailable}), so an idle server cannot be told from a stopped archiver`;
    problem('lag', ageMs > criticalAfterMs ? 'critical' : 'warning', `the newest segment in ${where} (${facts.newest!.file}) was archived ${formatAge(ageMs)} ago, more than ${formatAge(ageMs > criticalAfterMs ? criticalAfterMs : warnAfterMs)}; ${pending}`);
  }

  const {lastArchivedAt, lastFailedAt, ...rest} = answered ?? ({} as ArchiverState);
  return {
    archive: {
      location: facts.location,
      files: facts.files,
      newest: facts.newest && ageMs !== undefined ? {file: facts.newest.file, archivedAt: facts.newest.archivedAt.toISOString(), ageMs} : undefined,
      rejected: facts.rejected.length,
      warnAfterMs,
      criticalAfterMs,
      server: answered ? {...rest, ...(lastArchivedAt ? {lastArchivedAt: lastArchivedAt.toISOString()} : {}), ...(lastFailedAt ? {lastFailedAt: lastFailedAt.toISOString()} : {})} : (server as {unavailable: string}),
    },
    problems,
  };
}
