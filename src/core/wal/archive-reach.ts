import {Writable} from 'node:stream';

import type {StorageBackend} from '../../contracts/storage.js';
import {judgeArchivedCopy, type WalAreaListing} from './archived-copies.js';
import type {WalCodec} from './archived-file.js';
import {endOfSegment, parseSegmentFile, parseTimelineHistory, recoveryPath, segmentFileName, type TimelineStretch, type TimelineSwitch} from './wal-positions.js';

/** One archived segment as a reach is computed from it: its name and when the storage took it. */
export interface ArchivedSegment {
  readonly file: string;
  readonly modifiedAt: Date;
}

/** How far the archive carries a recovery that starts at a base backup. */
export interface ArchiveReach {
  /** The timelines a recovery follows, and the segments each contributes. */
  readonly path: readonly TimelineStretch[];
  /** The last segment of the unbroken run from the start: recovery can replay up to its end. */
  readonly contiguousTo: (ArchivedSegment & {readonly timeline: number; readonly end: bigint}) | undefined;
  /** Segments the path needs that the archive lacks, before the newest one it holds (the first 100). */
  readonly missing: readonly string[];
  /** The newest segment on the path. */
  readonly newest: ArchivedSegment | undefined;
}

const MISSING_REPORTED = 100;

/**
 * Walks the recovery path segment by segment over what the archive holds. Pure: the listing, the
 * path and the segment size in, the reach out. The newest timeline's stretch runs to the newest
 * segment archived on it.
 */
export function reachAlongPath(segments: readonly ArchivedSegment[], path: readonly TimelineStretch[], segmentSize: number): ArchiveReach {
  const present = new Map(segments.map((segment) => [segment.file, segment]));
  const newestOn = (timeline: number): bigint | undefined => {
    let newest: bigint | undefined;
    for (const segment of segments) {
      const parsed = parseSegmentFile(segment.file, segmentSize);
      if (parsed && parsed.timeline === timeline && (newest === undefined || parsed.segment > newest)) newest = parsed.segment;
    }
    return newest;
  };
  const missing: string[] = [];
  let contiguousTo: ArchiveReach['contiguousTo'];
  let newest: ArchivedSegment | undefined;
  let broken = false;
  for (const stretch of path) {
    const last = stretch.last ?? newestOn(stretch.timeline);
    if (last === undefined) continue;
    for (let segment = stretch.first; segment <= last; segment++) {
      const file = segmentFileName(stretch.timeline, segment, segmentSize);
      const archived = present.get(file);
      if (!archived) {
        broken = true;
        if (missing.length < MISSING_REPORTED) missing.push(file);
        continue;
      }
      newest = archived;
      if (!broken) contiguousTo = {...archived, timeline: stretch.timeline, end: endOfSegment(segment, segmentSize)};
    }
  }
  // A gap after the newest archived segment is not a gap: nothing newer has been archived yet.
  const newestSegment = newest ? parseSegmentFile(newest.file, segmentSize) : undefined;
  const trimmed = missing.filter((file) => {
    const parsed = parseSegmentFile(file, segmentSize)!;
    return newestSegment !== undefined && parsed.segment < newestSegment.segment;
  });
  return {path, contiguousTo, missing: trimmed, newest};
}

class TextSink extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
}

/** The timelines the archive has an authentic history file for, newest first, each with its ancestry; and the history files refused. */
export async function archivedTimelines(storage: StorageBackend, listing: WalAreaListing, codec: WalCodec, signal?: AbortSignal): Promise<{timelines: Array<{timeline: number; history: TimelineSwitch[]}>; refused: string[]}> {
  const histories = listing.copies.filter((copy) => copy.file.kind === 'history').sort((a, b) => b.file.timeline - a.file.timeline);
  const refused: string[] = [];
  const timelines: Array<{timeline: number; history: TimelineSwitch[]}> = [];
  for (const copy of histories) {
    if (timelines.some((known) => known.timeline === copy.file.timeline)) continue;
    const sink = new TextSink();
    const judgement = await judgeArchivedCopy(storage, copy, codec, sink, signal);
    if (judgement.verdict !== 'good') {
      refused.push(`${copy.file.name}: ${judgement.reason}`);
      continue;
    }
    const history = parseTimelineHistory(Buffer.concat(sink.chunks).toString('utf8'));
    if (!history) {
      refused.push(`${copy.file.name}: not a timeline history`);
      continue;
    }
    timelines.push({timeline: copy.file.timeline, history});
  }
  return {timelines, refused};
}

/**
 * The reach of the archive at `storage` for a recovery from `start` on `timeline`, following the
 * newest timeline that branched from the backup's own after its start (as recovery_target_timeline
 * = 'latest' would where that is the newest of all). A timeline that branched off before the start
 * (a copy restored from an older backup that took over) is not this backup's to follow; then the
 * backup's own timeline is.
 */
export async function archiveReachFrom(
  storage: StorageBackend,
  listing: WalAreaListing,
  codec: WalCodec,
  start: {timeline: number; position: bigint; segmentSize: number},
  signal?: AbortSignal,
): Promise<ArchiveReach & {readonly timeline: number; readonly refusedHistories: readonly string[]}> {
  const {timelines, refused} = await archivedTimelines(storage, listing, codec, signal);
  const segments = listing.copies.filter((copy) => copy.file.kind === 'segment').map((copy) => ({file: copy.file.name, modifiedAt: copy.modifiedAt}));
  for (const candidate of timelines) {
    if (candidate.timeline <= start.timeline) break;
    const path = recoveryPath(start.timeline, start.position, candidate.timeline, candidate.history, start.segmentSize);
    if (path) return {...reachAlongPath(segments, path, start.segmentSize), timeline: candidate.timeline, refusedHistories: refused};
  }
  const own = [{timeline: start.timeline, first: start.position / BigInt(start.segmentSize), last: undefined}];
  return {...reachAlongPath(segments, own, start.segmentSize), timeline: start.timeline, refusedHistories: refused};
}
