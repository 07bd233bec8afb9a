import {readCatalog} from '../catalog/index.js';
import {SynapseError, isSynapseError} from '../errors/index.js';
import {acquireStorageLock, describeTakeover} from '../lock/index.js';
import {MAX_METADATA_BYTES, parseMetadata, type DocumentAuthenticator} from '../metadata/index.js';
import {metadataKeyFor} from '../naming/index.js';
import {readSmallObject, storageError} from '../storage/index.js';
import {decideTrust} from '../trust/index.js';
import {copyBackup, type CopyOutcome, type CopySource} from './copy-backup.js';
import {locateBackups, type LocatedBackup, type LocationCatalog} from './located-backups.js';
import type {Location} from './location.js';

export interface SyncContext {
  readonly locations: readonly Location[];
  /** With a key configured: only authentic copies are copied. */
  readonly authenticator: DocumentAuthenticator | undefined;
  readonly signal?: AbortSignal;
  readonly onWarning?: (message: string) => void;
}

export interface SyncOptions {
  readonly dryRun?: boolean;
  /** Only this location is written to; every location may be read from. */
  readonly location?: string;
  /** Replace a copy that fails its checksum (see copyBackup). */
  readonly repair?: boolean;
  /** Only these backups (a replicated run's new one). */
  readonly backups?: readonly string[];
}

export interface SyncedCopy {
  readonly backup: string;
  readonly from: string;
  readonly outcome: CopyOutcome['outcome'];
  readonly bytes?: number;
  readonly reason?: string;
}

export interface LocationSync {
  readonly location: string;
  readonly copied: readonly SyncedCopy[];
  /** Copies left as they are: what the location holds differs (damaged or planted). */
  readonly conflicts: readonly SyncedCopy[];
  /** Backups this location already held whole. */
  readonly present: number;
  /** Why this location could not be synced, or a copy failed, when it did. */
  readonly failures: readonly string[];
}

export interface SyncResult {
  readonly dryRun: boolean;
  readonly locations: readonly LocationSync[];
}

/** Every location's catalog, each read on its own: one that cannot be read is named, not fatal. */
export async function readLocationCatalogs(locations: readonly Location[], authenticator: DocumentAuthenticator | undefined): Promise<LocationCatalog[]> {
  return Promise.all(
    locations.map(async (location): Promise<LocationCatalog> => {
      try {
        return {location: location.name, catalog: await readCatalog(location.storage, {authenticator})};
      } catch (error) {
        return {location: location.name, error: error as Error};
      }
    }),
  );
}

/**
 * The source of a copy: the metadata read again from where the catalog found the good copy and
 * judged as every reader judges it, so that nothing swapped in between is copied on the catalog's
 * earlier word.
 */
export async function copySourceAt(location: Location, name: string, authenticator: DocumentAuthenticator | undefined, expectedSha256: string): Promise<CopySource> {
  let metadataText: string;
  try {
    metadataText = await readSmallObject(location.storage, metadataKeyFor(name), MAX_METADATA_BYTES);
  } catch (error) {
    throw storageError(error, location.storage, 'read the metadata of', metadataKeyFor(name));
  }
  const metadata = parseMetadata(name, metadataText);
  const trust = await decideTrust(metadata, {authenticator});
  if (trust.verdict === 'refused' || metadata.checksums.stored !== expectedSha256) {
    throw new SynapseError('E_NOT_AUTHENTIC', {message: `unable to copy '${name}' from location '${location.name}': its metadata changed since it was read, and is not the good copy's any more`});
  }
  return {location, metadata, metadataText};
}

function describeFailure(error: unknown): string {
  return isSynapseError(error) || error instanceof Error ? (error as Error).message : String(error);
}

/**
 * What a location lacks that another holds good: per backup, the first good copy elsewhere. With
 * `repair`, its good-looking copies too: one damaged in its own size looks good until it is read,
 * and copyBackup reads it.
 */
function wanted(backups: readonly LocatedBackup[], target: string, repair: boolean): Array<{backup: LocatedBackup; from: string; sha256: string}> {
  const plan: Array<{backup: LocatedBackup; from: string; sha256: string}> = [];
  for (const backup of backups) {
    const here = backup.copies.find((copy) => copy.location === target)!;
    if ((here.state === 'good' && !repair) || here.state === 'unreadable') continue;
    const source = backup.copies.find((copy) => copy.location !== target && copy.state === 'good');
    if (source?.entry?.metadata) plan.push({backup, from: source.location, sha256: source.entry.metadata.checksums.stored});
  }
  return plan;
}

/**
 * Copies to each location what it lacks from a location that holds it good, under that location's
 * lock: the same bytes and metadata, the SHA-256 checked as they arrive. A copy that differs is
 * reported and left (or, failing its checksum, replaced with `repair`); a location that cannot be
 * locked or written to is named and the others go on.
 */
export async function syncLocations(context: SyncContext, options: SyncOptions = {}): Promise<SyncResult> {
  const {locations} = context;
  if (options.location !== undefined && !locations.some((location) => location.name === options.location)) {
    throw new SynapseError('E_USAGE', {message: `there is no location named '${options.location}' (configured: ${locations.map((location) => location.name).join(', ')})`});
  }
  const catalogs = await readLocationCatalogs(locations, context.authenticator);
  for (const catalog of catalogs) if ('error' in catalog) context.onWarning?.(`location '${catalog.location}' could not be read: ${catalog.error.message}`);
  const only = options.backups === undefined ? undefined : new Set(options.backups);
  const backups = locateBackups(catalogs).filter((backup) => only === undefined || only.has(backup.name));
  const results: LocationSync[] = [];
  for (const target of locations) {
    if (options.location !== undefined && target.name !== options.location) continue;
    const catalog = catalogs.find((candidate) => candidate.location === target.name)!;
    if ('error' in catalog) {
      results.push({location: target.name, copied: [], conflicts: [], present: 0, failures: [`unable to read the location: ${catalog.error.message}`]});
      continue;
    }
    const plan = wanted(backups, target.name, options.repair === true);
    // With repair, a good-looking copy is counted once read and found whole (copyBackup says 'present').
    const present = options.repair ? 0 : backups.filter((backup) => backup.copies.find((copy) => copy.location === target.name)?.state === 'good').length;
    results.push(await syncOne(context, target, plan, present, options));
  }
  return {dryRun: options.dryRun === true, locations: results};
}

async function syncOne(context: SyncContext, target: Location, plan: ReturnType<typeof wanted>, present: number, options: SyncOptions): Promise<LocationSync> {
  const copied: SyncedCopy[] = [];
  const conflicts: SyncedCopy[] = [];
  const failures: string[] = [];
  let alreadyThere = present;
  if (plan.length === 0) return {location: target.name, copied, conflicts, present, failures};
  let lock;
  if (!options.dryRun) {
    try {
      lock = await acquireStorageLock(target.storage, 'backup sync');
    } catch (error) {
      return {location: target.name, copied, conflicts, present, failures: [describeFailure(error)]};
    }
    if (lock.tookOverFrom) context.onWarning?.(describeTakeover(lock.tookOverFrom));
  }
  try {
    for (const {backup, from, sha256} of plan) {
      if (context.signal?.aborted) throw new SynapseError('E_CANCELLED', {message: `sync to location '${target.name}' cancelled`});
      try {
        const source = await copySourceAt(context.locations.find((location) => location.name === from)!, backup.name, context.authenticator, sha256);
        const outcome = await copyBackup(source, target, {...(context.signal ? {signal: context.signal} : {}), repair: options.repair === true, dryRun: options.dryRun === true});
        if (outcome.outcome === 'conflict') conflicts.push({backup: backup.name, from, outcome: 'conflict', reason: outcome.reason});
        else if (outcome.outcome === 'present') alreadyThere++;
        else copied.push({backup: backup.name, from, outcome: outcome.outcome, bytes: outcome.bytes});
      } catch (error) {
        if (isSynapseError(error) && error.code === 'E_CANCELLED') throw error;
        failures.push(`${backup.name}: ${describeFailure(error)}`);
      }
    }
  } finally {
    await lock?.release().catch(() => {});
  }
  return {location: target.name, copied, conflicts, present: alreadyThere, failures};
}
