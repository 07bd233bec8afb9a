import {SynapseError} from '../../errors/index.js';
import {formatLsn, parseLsn, parseSegmentFile, segmentFileName, segmentNumberOf} from '../../wal/index.js';
import type {PhysicalRestoreResult} from './restore-physical.js';
import type {RecoveryTarget} from './recovery-target.js';

/** Where a promoted server's recovery ended, from the last line of its new timeline's history file. */
export interface RecoveryEnd {
  /** The timeline recovery replayed last (the parent of the new one). */
  readonly timeline: number;
  /** The switch point: where replay ended. */
  readonly position: bigint;
  /** PostgreSQL's words: "no recovery target specified", "before 2026-12-02 14:30:01.5+00", ... */
  readonly reason: string;
}

/** The last line of a `.history` file, `<parent timeline>\t<switch LSN>\t<reason>`; undefined when it has none. */
export function recoveryEndOf(historyText: string): RecoveryEnd | undefined {
  const lines = historyText.split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
  const last = lines.at(-1);
  if (!last) return undefined;
  const [timeline, position, ...reason] = last.split('\t');
  const parsed = position === undefined ? undefined : parseLsn(position.trim());
  if (!timeline || !/^\d{1,10}$/.test(timeline.trim()) || parsed === undefined) return undefined;
  return {timeline: Number(timeline), position: parsed, reason: reason.join('\t').trim()};
}

export interface ReplayExpectation {
  readonly backupName: string;
  /** The timeline the archive was checked along, which restore wrote as recovery_target_timeline. */
  readonly timeline: number;
  readonly path: PhysicalRestoreResult['archiveReach']['path'];
  readonly segmentSize: number;
  readonly target: RecoveryTarget;
  /** The newest segment on the path that the archive holds: a recovery to the end must replay into it. */
  readonly newestWalFile: string | undefined;
  /** Segments the path needs and the archive lacks, before its newest. */
  readonly missing: readonly string[];
}

const TIME_REASON = /^(before|after) (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)\+00$/;
const LSN_REASON = /^(before|after) LSN ([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})$/;

function failed(message: string, details: Record<string, unknown>): SynapseError {
  return new SynapseError('E_RESTORE_TEST_FAILED', {
    message,
    suggestion: 'The base backup started, but recovery did not replay what the archive should give it: do not count on recovering past the segment named. Run `synapse-backup backup verify` for the WAL, take a new physical backup, and drill that one.',
    details,
  });
}

/** The segment file a position lies in, on the path's timeline for it. */
function fileOnPath(segment: bigint, path: ReplayExpectation['path'], fallbackTimeline: number, segmentSize: number): string {
  const stretch = path.find((candidate) => segment >= BigInt(candidate.firstSegment) && (candidate.lastSegment === undefined || segment <= BigInt(candidate.lastSegment)));
  return segmentFileName(stretch?.timeline ?? fallbackTimeline, segment, segmentSize);
}

/**
 * Judges where a drill's recovery ended against what it was asked and what the archive holds.
 * PostgreSQL promotes where its restore_command first fails, whatever the reason (a segment
 * missing, damaged or not authentic), so "it promoted" proves nothing about the WAL after that
 * point: recovery to the end must have replayed into the newest archived segment, and a target
 * must be the reason it stopped. Pure; throws E_RESTORE_TEST_FAILED naming the first segment not
 * replayed.
 */
export function judgeReplay(end: RecoveryEnd, expected: ReplayExpectation): void {
  const ended = `recovery of '${expected.backupName}' ended at ${formatLsn(end.position)} on timeline ${end.timeline} (${end.reason})`;
  if (end.timeline !== expected.timeline) {
    throw failed(`${ended}, but the archive's WAL for it runs on timeline ${expected.timeline}`, {end: formatLsn(end.position), timeline: end.timeline});
  }
  // Where replay ended, the next segment is the first it did not get: at a segment's start, that segment; inside one, a record ran into the next.
  const firstNotReplayed = end.position === 0n ? 0n : segmentNumberOf(end.position - 1n, expected.segmentSize) + 1n;
  const notReplayed = fileOnPath(firstNotReplayed, expected.path, expected.timeline, expected.segmentSize);
  switch (expected.target.kind) {
    case 'latest': {
      const newest = expected.newestWalFile ? parseSegmentFile(expected.newestWalFile, expected.segmentSize) : undefined;
      if (newest && firstNotReplayed <= newest.segment) {
        const why = expected.missing.includes(notReplayed) ? 'it is missing from the archive' : 'the server could not restore it (see wal fetch in the server log: damaged, not authentic or unreadable)';
        throw failed(`${ended}, before the newest archived segment ${expected.newestWalFile}: ${notReplayed} was not replayed, ${why}`, {segment: notReplayed, newest: expected.newestWalFile});
      }
      return;
    }
    case 'time': {
      const match = TIME_REASON.exec(end.reason);
      const stoppedAt = match ? new Date(`${match[2]!.replace(' ', 'T')}Z`) : undefined;
      if (!stoppedAt || Number.isNaN(stoppedAt.getTime())) throw failed(`${ended}, not at the target time ${expected.target.text}: ${notReplayed} was not replayed`, {segment: notReplayed});
      // PostgreSQL stops before the first commit past the target: a stop earlier than the target is not the target's.
      if (stoppedAt < expected.target.at) {
        throw failed(`${ended}, earlier than the target time ${expected.target.text}`, {segment: notReplayed});
      }
      return;
    }
    case 'lsn': {
      const match = LSN_REASON.exec(end.reason);
      const stoppedAt = match ? parseLsn(match[2]!) : undefined;
      if (stoppedAt === undefined || stoppedAt < expected.target.position) throw failed(`${ended}, not at the target position ${expected.target.text}`, {segment: notReplayed});
      return;
    }
    case 'name': {
      if (end.reason !== `at restore point "${expected.target.name}"`) throw failed(`${ended}, not at the restore point '${expected.target.name}'`, {segment: notReplayed});
      return;
    }
  }
}

/** The recovered cluster is the one the backup recorded: a tar of another cluster is not this backup, whatever it replays. */
export function assertSameCluster(backupName: string, recovered: string, recorded: string): void {
  if (recovered !== recorded) throw failed(`the drill of '${backupName}' recovered a cluster with system identifier ${recovered}, not the backup's ${recorded}`, {systemIdentifier: recovered});
}
