import {errnoCode} from '../errors/index.js';
import type {Location} from '../replication/index.js';
import {readSmallObject, storageError, writeSmallObject} from '../storage/index.js';
import {judgeArchivedCopy, listWalArea, type CopyJudgement} from './archived-copies.js';
import type {WalCodec} from './archived-file.js';
import {ARCHIVE_IDENTITY_KEY} from './archive-identity.js';
import type {WalObjectName} from './wal-file-names.js';

export interface WalAreaSync {
  readonly location: string;
  /** WAL files copied there (or, in a dry run, that would be). */
  readonly copied: readonly string[];
  /** WAL files it held already. */
  readonly present: number;
  /** Copies elsewhere that were not copied: not authentic, damaged, or another content of a file it holds. */
  readonly refused: ReadonlyArray<{readonly key: string; readonly reason: string}>;
  readonly failures: readonly string[];
}

interface AreaListing {
  readonly objects: Map<string, WalObjectName>;
  /** File name -> the keys of its copies. */
  readonly files: Map<string, string[]>;
  readonly identity: boolean;
}

async function listArea(location: Location): Promise<AreaListing> {
  const area = await listWalArea(location.storage);
  const objects = new Map(area.copies.map((copy) => [copy.key, copy]));
  const files = new Map<string, string[]>();
  for (const copy of area.copies) files.set(copy.file.name, [...(files.get(copy.file.name) ?? []), copy.key]);
  return {objects, files, identity: area.identity};
}

/**
 * Copies to each location the archived WAL files it lacks, from another that holds a good copy:
 * the copy is read and its MAC checked where it is, the same bytes are stored, and the stored
 * copy is checked again (one that fails is removed). A file the location holds under another tag
 * is compared: the same file is left as it is, other content is reported, never joined by a second
 * version; the archive's signed identity goes
 * along where a location has none, and a location that is another cluster's archive is left alone.
 */
export async function syncWalArea(locations: readonly Location[], codec: WalCodec, options: {dryRun: boolean; location?: string; signal?: AbortSignal}): Promise<WalAreaSync[]> {
  const listings = await Promise.all(locations.map((location) => listArea(location).then((listing) => ({listing}), (error: unknown) => ({error: error as Error}))));
  const results: WalAreaSync[] = [];
  for (const [index, target] of locations.entries()) {
    if (options.location !== undefined && target.name !== options.location) continue;
    const mine = listings[index]!;
    if ('error' in mine) {
      results.push({location: target.name, copied: [], present: 0, refused: [], failures: [mine.error.message]});
      continue;
    }
    const copied: string[] = [];
    const refused: Array<{key: string; reason: string}> = [];
    const failures: string[] = [];
    const sources = locations.flatMap((location, other) => (other !== index && 'listing' in listings[other]! ? [{location, listing: (listings[other] as {listing: AreaListing}).listing}] : []));
    try {
      await carryIdentity(target, mine.listing, sources, options.dryRun);
    } catch (error) {
      results.push({location: target.name, copied, present: mine.listing.files.size, refused, failures: [(error as Error).message]});
      continue;
    }
    const wanted = new Map<string, Array<{location: Location; copy: WalObjectName}>>();
    const otherTags: Array<{location: Location; copy: WalObjectName; held: string[]}> = [];
    for (const source of sources) {
      for (const copy of source.listing.objects.values()) {
        const held = mine.listing.files.get(copy.file.name);
        if (held?.includes(copy.key)) continue;
        if (held) {
          otherTags.push({location: source.location, copy, held});
          continue;
        }
        wanted.set(copy.file.name, [...(wanted.get(copy.file.name) ?? []), {location: source.location, copy}]);
      }
    }
    // A file held under another tag may be the same file (stored by an earlier version, or
    // compressed otherwise by a push that found it at one location and not at the other): decoded
    // and compared, it is nothing to do. Other content is reported, never joined.
    const heldJudgements = new Map<string, Promise<CopyJudgement>>();
    for (const {location: source, copy, held} of otherTags) {
      const theirs = await judgeArchivedCopy(source.storage, copy, codec, undefined, options.signal);
      if (theirs.verdict !== 'good') {
        refused.push({key: `${source.name}:${copy.key}`, reason: theirs.reason});
        continue;
      }
      let same = false;
      for (const key of held) {
        if (!heldJudgements.has(key)) heldJudgements.set(key, judgeArchivedCopy(target.storage, mine.listing.objects.get(key)!, codec, undefined, options.signal));
        const ours = await heldJudgements.get(key)!;
        if (ours.verdict === 'good' && ours.digest.bytes === theirs.digest.bytes && ours.digest.sha256 === theirs.digest.sha256) same = true;
      }
      if (!same) refused.push({key: copy.key, reason: `${target.name} holds '${copy.file.name}' with other content (${held[0]}); archived files are never joined by a second version`});
    }
    for (const [file, candidates] of [...wanted].sort(([a], [b]) => (a < b ? -1 : 1))) {
      for (const {location: source, copy} of candidates) {
        const judged = await judgeArchivedCopy(source.storage, copy, codec, undefined, options.signal);
        if (judged.verdict !== 'good') {
          refused.push({key: `${source.name}:${copy.key}`, reason: judged.reason});
          continue;
        }
        if (!options.dryRun) {
          try {
            await target.storage.put(copy.key, await source.storage.get(copy.key), {ifNotExists: true, private: true, immutable: true});
          } catch (error) {
            if (errnoCode(error) !== 'EEXIST') {
              failures.push(storageError(error, target.storage, 'copy the archived WAL file', copy.key).message);
              break;
            }
          }
          const arrived = await judgeArchivedCopy(target.storage, copy, codec, undefined, options.signal);
          if (arrived.verdict !== 'good') {
            await target.storage.delete(copy.key).catch(() => {});
            failures.push(`the copy of '${copy.key}' that arrived is not good (${arrived.reason}); removed`);
            break;
          }
        }
        copied.push(file);
        break;
      }
    }
    results.push({location: target.name, copied, present: mine.listing.files.size, refused, failures});
  }
  return results;
}

/** The archive's identity goes where a location has none; a location that is another cluster's is not synced into. */
async function carryIdentity(target: Location, mine: AreaListing, sources: ReadonlyArray<{location: Location; listing: AreaListing}>, dryRun: boolean): Promise<void> {
  const holder = sources.find((source) => source.listing.identity);
  if (!holder) return;
  const theirs = await readSmallObject(holder.location.storage, ARCHIVE_IDENTITY_KEY, 64 * 1024);
  const systemOf = (text: string): unknown => {
    try {
      return (JSON.parse(text) as {systemIdentifier?: unknown}).systemIdentifier;
    } catch {
      return undefined;
    }
  };
  if (mine.identity) {
    const own = await readSmallObject(target.storage, ARCHIVE_IDENTITY_KEY, 64 * 1024);
    if (systemOf(own) !== systemOf(theirs)) {
      throw new Error(`its WAL archive is the cluster ${String(systemOf(own))}'s, and '${holder.location.name}' holds the cluster ${String(systemOf(theirs))}'s: nothing was copied there`);
    }
    return;
  }
  if (!dryRun) await writeSmallObject(target.storage, ARCHIVE_IDENTITY_KEY, theirs, {ifNotExists: true, private: true}).catch((error: unknown) => {
    if (errnoCode(error) !== 'EEXIST') throw error;
  });
}
