import type {WalObjectName} from './wal-file-names.js';
import {parseLsn, segmentNumberOf} from './wal-positions.js';

/** Where a kept physical backup's recovery begins: all it needs of the archive is from here on. */
export interface KeptWalStart {
  readonly backupName: string;
  readonly startLsn: string;
  readonly walSegmentSize: number;
}

export interface WalRetentionDecision {
  /** The archived copies no kept backup needs, oldest first (the order they are removed in). */
  readonly remove: readonly WalObjectName[];
  /** The oldest kept backup's start segment; undefined when nothing is removed for want of a boundary. */
  readonly keptFrom: {readonly backupName: string; readonly segment: bigint} | undefined;
  /** Why nothing is removed, when nothing is. */
  readonly reason: string;
}

/**
 * Which archived WAL files cleanup may remove: those of segments before the start of the oldest
 * kept physical backup, on any timeline (a later timeline's segment before that point belongs to
 * no recovery that starts there). Timeline history files are always kept: recovery reads every
 * one to find its way. With no kept physical backup, or one whose start is unknown, nothing is
 * removed: the archive may be all there is. Pure.
 */
export function decideWalRetention(copies: readonly WalObjectName[], kept: readonly KeptWalStart[], unknownStarts: readonly string[]): WalRetentionDecision {
  if (unknownStarts.length > 0) return {remove: [], keptFrom: undefined, reason: `the WAL start of kept physical backup${unknownStarts.length === 1 ? '' : 's'} ${unknownStarts.join(', ')} is unknown (metadata missing or unreadable), so all archived WAL is kept`};
  if (kept.length === 0) return {remove: [], keptFrom: undefined, reason: 'no physical backup is kept, so no archived WAL is removed'};
  let oldest: {backupName: string; segment: bigint; segmentSize: number} | undefined;
  for (const backup of kept) {
    const segment = segmentNumberOf(parseLsn(backup.startLsn)!, backup.walSegmentSize);
    if (!oldest || segment < oldest.segment) oldest = {backupName: backup.backupName, segment, segmentSize: backup.walSegmentSize};
  }
  const boundary = oldest!;
  const segmentOf = (copy: WalObjectName): bigint | undefined => {
    if (copy.file.kind === 'history' || copy.file.segment === undefined) return undefined;
    const high = BigInt(`0x${copy.file.segment.slice(0, 8)}`);
    const low = BigInt(`0x${copy.file.segment.slice(8)}`);
    return high * (0x1_0000_0000n / BigInt(boundary.segmentSize)) + low;
  };
  const remove = copies
    .filter((copy) => {
      const segment = segmentOf(copy);
      return segment !== undefined && segment < boundary.segment;
    })
    .sort((a, b) => {
      const difference = segmentOf(a)! - segmentOf(b)!;
      return difference < 0n ? -1 : difference > 0n ? 1 : a.key < b.key ? -1 : 1;
    });
  return {remove, keptFrom: {backupName: boundary.backupName, segment: boundary.segment}, reason: `kept from the start of ${boundary.backupName}, the oldest kept physical backup`};
}
