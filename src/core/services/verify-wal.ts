import type {StorageBackend} from '../../contracts/storage.js';
import type {BackupMetadata, RecordedWalRange} from '../metadata/index.js';
import {archiveReachFrom, judgeArchivedCopy, listWalArea, parseLsn, parseSegmentFile, type CopyJudgement, type WalCodec} from '../wal/index.js';
import type {Findings} from './verify-backup.js';

/** Judgements of archived copies, per storage: a run that verifies several physical backups reads each segment once. */
const judged = new WeakMap<StorageBackend, Map<string, Promise<CopyJudgement>>>();

function judgeOnce(storage: StorageBackend, key: string, judge: () => Promise<CopyJudgement>): Promise<CopyJudgement> {
  let cache = judged.get(storage);
  if (!cache) judged.set(storage, (cache = new Map()));
  let judgement = cache.get(key);
  if (!judgement) cache.set(key, (judgement = judge()));
  return judgement;
}

/**
 * The WAL a physical backup needs, checked in the archive: from its start segment, along the
 * timelines recovery would follow, to the newest archived segment, with no gap, and every segment
 * read to its end and its MAC checked. A gap before the backup's end makes it unrestorable; one
 * after it limits how far it recovers; either fails the check, naming the first missing segment.
 */
export async function verifyWalFor(storage: StorageBackend, metadata: BackupMetadata & {physical: RecordedWalRange}, codec: WalCodec, findings: Findings, signal?: AbortSignal): Promise<void> {
  const range = metadata.physical;
  const listing = await listWalArea(storage);
  const reach = await archiveReachFrom(storage, listing, codec, {timeline: range.timeline, position: parseLsn(range.startLsn)!, segmentSize: range.walSegmentSize}, signal);
  const stop = parseLsn(range.stopLsn)!;
  const through = reach.contiguousTo;
  if (!through || through.end <= stop) {
    findings.fail('wal', 'E_WAL_NOT_FOUND', `the WAL archive lacks ${reach.missing[0] ?? range.stopWalFile}, which recovery needs to reach this backup's end (${range.stopWalFile}): the backup cannot be restored`);
    return;
  }
  if (reach.missing.length > 0) {
    findings.fail('wal', 'E_WAL_NOT_FOUND', `the WAL archive has a gap: ${reach.missing[0]} is missing${reach.missing.length > 1 ? ` (and ${reach.missing.length - 1} more: ${reach.missing.slice(1, 6).join(', ')}${reach.missing.length > 6 ? ', ...' : ''})` : ''}, so this backup recovers only up to ${through.file} (archived ${through.modifiedAt.toISOString()}), not to ${reach.newest!.file}`);
    return;
  }
  // Every copy of every segment on the path, up to the newest: the one recovery picks must be good, and a bad one beside it is worth naming.
  const segments = listing.copies.filter((copy) => {
    const parsed = copy.file.kind === 'segment' ? parseSegmentFile(copy.file.name, range.walSegmentSize) : undefined;
    return parsed !== undefined && reach.path.some((stretch) => stretch.timeline === parsed.timeline && parsed.segment >= stretch.first && (stretch.last === undefined || parsed.segment <= stretch.last));
  });
  const bad: string[] = [];
  let read = 0;
  for (const copy of segments) {
    const judgement = await judgeOnce(storage, copy.key, () => judgeArchivedCopy(storage, copy, codec, undefined, signal));
    read++;
    if (judgement.verdict !== 'good') bad.push(`${copy.file.name} (${judgement.reason})`);
  }
  if (bad.length > 0) {
    findings.fail('wal', bad.some((entry) => entry.includes('MAC') || entry.includes('not encrypted')) ? 'E_NOT_AUTHENTIC' : 'E_INTEGRITY', `archived WAL this backup needs is not intact: ${bad.slice(0, 5).join('; ')}${bad.length > 5 ? `; and ${bad.length - 5} more` : ''}`);
    return;
  }
  findings.pass('wal', `${read} archived WAL segment${read === 1 ? '' : 's'} from ${range.startWalFile} to ${through.file} (timeline ${reach.timeline}), continuous, read to the end and authenticated`);
}
