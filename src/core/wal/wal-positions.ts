/**
 * WAL positions (LSNs) and the segment files that hold them, as PostgreSQL computes them
 * (src/include/access/xlog_internal.h): an LSN `X/Y` is the 64-bit byte position `X << 32 | Y`;
 * the segment holding it is that position divided by the segment size, and its file name is the
 * timeline, then the segment number split at `0x100000000 / segment size`.
 */

const LSN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** The byte position an LSN `X/Y` names; undefined for anything else. */
export function parseLsn(text: string): bigint | undefined {
  const match = LSN.exec(text.trim());
  if (!match) return undefined;
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** `X/Y`, upper-case hex without leading zeros, as PostgreSQL prints LSNs. */
export function formatLsn(position: bigint): string {
  return `${(position >> 32n).toString(16).toUpperCase()}/${(position & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

const SEGMENT_FILE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

function segmentsPerLogId(segmentSize: number): bigint {
  return 0x1_0000_0000n / BigInt(segmentSize);
}

/** The segment number of a position. */
export function segmentNumberOf(position: bigint, segmentSize: number): bigint {
  return position / BigInt(segmentSize);
}

/** The file name of segment `segment` on `timeline`. */
export function segmentFileName(timeline: number, segment: bigint, segmentSize: number): string {
  const perLogId = segmentsPerLogId(segmentSize);
  const hex = (value: bigint | number): string => value.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segment / perLogId)}${hex(segment % perLogId)}`;
}

/** The file holding `position` on `timeline`. */
export function walFileOfPosition(timeline: number, position: bigint, segmentSize: number): string {
  return segmentFileName(timeline, segmentNumberOf(position, segmentSize), segmentSize);
}

/** A segment file's timeline and segment number; undefined for any other name. */
export function parseSegmentFile(name: string, segmentSize: number): {timeline: number; segment: bigint} | undefined {
  const match = SEGMENT_FILE.exec(name);
  if (!match) return undefined;
  const low = BigInt(`0x${match[3]}`);
  if (low >= segmentsPerLogId(segmentSize)) return undefined;
  return {timeline: Number.parseInt(match[1]!, 16), segment: BigInt(`0x${match[2]}`) * segmentsPerLogId(segmentSize) + low};
}

/** The first position after the segment `segment`. */
export function endOfSegment(segment: bigint, segmentSize: number): bigint {
  return (segment + 1n) * BigInt(segmentSize);
}

/** One line of a timeline history file: the parent timeline, and the position where the child branched off it. */
export interface TimelineSwitch {
  readonly timeline: number;
  readonly switchPosition: bigint;
}

/**
 * A `.history` file's content: one line per ancestor, `<parent timeline>\t<switch LSN>\t<reason>`,
 * oldest first; comments and blank lines skipped. Undefined where a line is none of these.
 */
export function parseTimelineHistory(text: string): TimelineSwitch[] | undefined {
  const switches: TimelineSwitch[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [timeline, position] = trimmed.split(/\s+/);
    const parsedPosition = position === undefined ? undefined : parseLsn(position);
    if (!timeline || !/^\d{1,10}$/.test(timeline) || parsedPosition === undefined) return undefined;
    switches.push({timeline: Number(timeline), switchPosition: parsedPosition});
  }
  return switches;
}

/** The range of segments one timeline contributes to a recovery path: from `first`, up to `last` (inclusive) when the path leaves it. */
export interface TimelineStretch {
  readonly timeline: number;
  readonly first: bigint;
  /** Undefined on the newest timeline, which runs on to the newest archived segment. */
  readonly last: bigint | undefined;
}

/**
 * The segments a recovery from `start` on `startTimeline` reads to reach `newestTimeline`, as
 * timeline stretches: the newest timeline's history names its ancestors and where each branched.
 * On a switch, the child timeline's copy of the switch segment is the one replayed. Undefined when
 * the start's timeline is not among the newest's ancestors.
 */
export function recoveryPath(
  startTimeline: number,
  start: bigint,
  newestTimeline: number,
  newestHistory: readonly TimelineSwitch[],
  segmentSize: number,
): TimelineStretch[] | undefined {
  const chain = [...newestHistory, {timeline: newestTimeline, switchPosition: undefined}];
  const from = chain.findIndex((entry) => entry.timeline === startTimeline);
  if (from === -1) return undefined;
  const stretches: TimelineStretch[] = [];
  let first = segmentNumberOf(start, segmentSize);
  for (let index = from; index < chain.length; index++) {
    const entry = chain[index]!;
    const leaves = entry.switchPosition === undefined ? undefined : segmentNumberOf(entry.switchPosition, segmentSize);
    // A backup that started after this timeline branched off is not on the path.
    if (leaves !== undefined && leaves < first) return undefined;
    stretches.push({timeline: entry.timeline, first, last: leaves === undefined ? undefined : leaves - 1n});
    if (leaves !== undefined) first = leaves;
  }
  return stretches;
}
