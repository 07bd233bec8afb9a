import {setTimeout as sleep} from 'node:timers/promises';

import type {StorageBackend} from '../../contracts/storage.js';
import {SynapseError, cancelledError} from '../errors/index.js';
import type {RecordedWalRange} from '../metadata/index.js';
import type {PhysicalServerFacts} from '../postgres/index.js';
import {archivedCopiesOf, formatLsn, judgeArchivedCopy, parseLsn, walFileOfPosition, type WalCodec} from '../wal/index.js';

const WAL_RANGE = /\{\s*"Timeline"\s*:\s*(\d+)\s*,\s*"Start-LSN"\s*:\s*"([0-9A-Fa-f]+\/[0-9A-Fa-f]+)"\s*,\s*"End-LSN"\s*:\s*"([0-9A-Fa-f]+\/[0-9A-Fa-f]+)"\s*\}/g;

/** The WAL ranges a backup_manifest's end lists (`"WAL-Ranges"`), oldest first. */
export function manifestWalRanges(tail: string): Array<{timeline: number; start: string; end: string}> {
  const section = /"WAL-Ranges"\s*:\s*\[([^\]]*)\]/.exec(tail);
  if (!section) return [];
  return [...section[1]!.matchAll(WAL_RANGE)].map((match) => ({timeline: Number(match[1]), start: match[2]!.toUpperCase(), end: match[3]!.toUpperCase()}));
}

/** The WAL range of a finished pg_basebackup, from its manifest; a backup without one is not a backup: nobody could tell which WAL restores it. */
export function walRangeOf(manifestTail: Buffer | undefined, facts: PhysicalServerFacts, stoppedAt: Date): RecordedWalRange {
  const ranges = manifestWalRanges(manifestTail?.toString('utf8') ?? '');
  const first = ranges[0];
  const last = ranges.at(-1);
  const start = first ? parseLsn(first.start) : undefined;
  const stop = last ? parseLsn(last.end) : undefined;
  if (start === undefined || stop === undefined) {
    throw new SynapseError('E_DUMP_FAILED', {
      message: 'unable to take a base backup: its tar holds no backup_manifest with a WAL range, so nobody could tell which WAL restores it; nothing was published',
      suggestion: 'Check that PG_BIN_DIR points at the real pg_basebackup and run the backup again; earlier backups are untouched.',
    });
  }
  return {
    systemIdentifier: facts.systemIdentifier,
    timeline: first!.timeline,
    startLsn: formatLsn(start),
    stopLsn: formatLsn(stop),
    startWalFile: walFileOfPosition(first!.timeline, start, facts.walSegmentSize),
    // A standby promoted during the backup ends it on a later timeline, whose file holds the end.
    stopWalFile: walFileOfPosition(last!.timeline, stop, facts.walSegmentSize),
    walSegmentSize: facts.walSegmentSize,
    stoppedAt: stoppedAt.toISOString(),
  };
}

/**
 * Waits until the storage holds an authentic copy of `file`: read to its end and its MAC checked,
 * since a planted copy would make the backup look restorable when it is not.
 */
export async function awaitArchivedSegment(storage: StorageBackend, codec: WalCodec, file: string, options: {timeoutMs: number; signal: AbortSignal; pollMs?: number}): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const judged = new Set<string>();
  const refused: string[] = [];
  for (;;) {
    if (options.signal.aborted) throw cancelledError('finish the backup', 'Nothing was published; earlier backups are untouched.');
    for (const copy of await archivedCopiesOf(storage, file)) {
      if (judged.has(copy.key)) continue;
      judged.add(copy.key);
      const judgement = await judgeArchivedCopy(storage, copy, codec, undefined, options.signal);
      if (judgement.verdict === 'good') return;
      refused.push(`${copy.key}: ${judgement.reason}`);
    }
    if (Date.now() >= deadline) {
      throw new SynapseError('E_WAL_NOT_FOUND', {
        message: `unable to finish the base backup: its stop segment ${file} did not arrive in the WAL archive at ${storage.location} within ${Math.round(options.timeoutMs / 1000)} s${refused.length > 0 ? `; copies refused: ${refused.join('; ')}` : ''}, so the backup could not be restored; nothing was published`,
        suggestion: "Check that the server's archive_command is `synapse-backup wal push %p` with the same BACKUP_LOCATIONS, and that pg_stat_archiver shows no failures (`synapse-backup status`); raise BACKUP_WAL_WAIT_SECONDS for a slow archive.",
        details: {walFile: file},
      });
    }
    await sleep(options.pollMs ?? 1000, undefined, {signal: options.signal}).catch(() => {});
  }
}
