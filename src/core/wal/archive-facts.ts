import type {StorageBackend} from '../../contracts/storage.js';
import {judgeArchivedCopy, listWalArea} from './archived-copies.js';
import type {WalCodec} from './archived-file.js';

/** What the WAL area of one location says about archiving, as far as it can be authenticated. */
export interface ArchiveFacts {
  readonly location: string;
  /** The area holds an archive (its identity document or archived files). */
  readonly present: boolean;
  /** Archived files of every kind. */
  readonly files: number;
  /** The newest archived segment whose content matches its tag (its MAC, with a key), and when the storage took it. */
  readonly newest?: {readonly file: string; readonly key: string; readonly archivedAt: Date};
  /** Newer segments than that one that are not good copies (planted, damaged, unreadable): never taken for progress. */
  readonly rejected: ReadonlyArray<{readonly key: string; readonly reason: string}>;
  /** The key of every archived copy, as listed: what another location is compared against. */
  readonly keys: readonly string[];
}

/** How many of the newest segments are read to find one that is authentic, before status says it cannot tell. */
const CANDIDATES = 5;

/**
 * Lists the WAL area and authenticates the newest segment by reading it (one segment per run):
 * its name and the storage's time alone could be planted by anyone who can write there, and a
 * monitor must not be made green by a file nobody archived.
 */
export async function readArchiveFacts(storage: StorageBackend, codec: WalCodec, signal?: AbortSignal): Promise<ArchiveFacts> {
  const area = await listWalArea(storage);
  const files = area.copies.length;
  const keys = area.copies.map((copy) => copy.key);
  // Timeline first, then position: a later name is later WAL.
  const newestFirst = area.copies.filter((copy) => copy.file.kind === 'segment').sort((a, b) => (a.file.name < b.file.name ? 1 : a.file.name > b.file.name ? -1 : 0));
  const rejected: Array<{key: string; reason: string}> = [];
  for (const candidate of newestFirst.slice(0, CANDIDATES)) {
    const judged = await judgeArchivedCopy(storage, candidate, codec, undefined, signal);
    if (judged.verdict === 'good') {
      return {location: storage.location, present: true, files, newest: {file: candidate.file.name, key: candidate.key, archivedAt: candidate.modifiedAt}, rejected, keys};
    }
    rejected.push({key: candidate.key, reason: judged.reason});
  }
  return {location: storage.location, present: area.identity || files > 0, files, rejected, keys};
}
