import type {StorageBackend, StorageSpace} from '../../contracts/storage.js';
import {readCatalog, type CatalogEntry} from '../catalog/index.js';
import {locateBackups, readLocationCatalogs, type Location, type LocationFailure} from '../replication/index.js';
import type {Settings} from '../config/index.js';
import {readJournal} from '../journal/index.js';
import type {BackupHealth} from '../retention/index.js';
import {readArchiverState} from '../postgres/index.js';
import {evaluateLocations, evaluateStatus, levelOf, statusPolicyFrom, type BackupFact, type LocationStatus, type LocationView, type RunFact, type StatusInput, type StatusReport, type UnusableBackup} from '../status/index.js';
import {readArchiveFacts, type WalCodec} from '../wal/index.js';
import {storageError} from '../storage/index.js';
import {documentAuthenticatorFor} from '../trust/index.js';

/** How status words each kind of backup that does not count. */
const UNUSABLE_REASONS: Record<Exclude<BackupHealth, 'good' | 'incomplete'>, string> = {
  forged: 'not authentic with the configured key (forged, or made with another key)',
  unsigned: 'not authenticated (no MAC, or written without a key)',
  damaged: 'damaged',
  'metadata-missing': 'without metadata',
  'metadata-unreadable': 'with unreadable metadata',
  'data-missing': 'without their backup file',
};

export interface StatusRequest {
  /** Every database the storage holds backups of, instead of the configured one. */
  readonly allDatabases: boolean;
  readonly now?: Date;
  /** Reads the WAL archive (to authenticate its newest segment); without it the archive is not judged. */
  readonly walCodec?: WalCodec;
}

/**
 * The WAL archive of the primary location and what the server says of its archiving, where there
 * is an archive there, or the thresholds say one is expected (then its absence is a problem).
 */
async function readArchive(settings: Settings, storage: StorageBackend, request: StatusRequest): Promise<StatusInput['archive']> {
  if (!request.walCodec) return undefined;
  const policy = statusPolicyFrom(settings.env).archive;
  const facts = await readArchiveFacts(storage, request.walCodec);
  if (!facts.present && policy.warnAfterMs === undefined && policy.criticalAfterMs === undefined) return undefined;
  return {facts, server: await readArchiverState(settings.database)};
}

/**
 * Reads everything status needs from the storage alone (no database is contacted, so a monitoring
 * host that can only read the storage can run it): the good backups, the run journal and the free
 * space, and evaluates them against the BACKUP_ALERT_* thresholds.
 */
export async function readBackupStatus(settings: Settings, storage: StorageBackend, request: StatusRequest, onWarning: (message: string) => void): Promise<StatusReport> {
  const authenticator = documentAuthenticatorFor(settings.encryption);
  const [{backups}, journal, space, archive] = await Promise.all([
    readCatalog(storage, {authenticator}),
    readJournal(storage, authenticator).catch((error: unknown) => {
      throw storageError(error, storage, 'read the run journal in');
    }),
    measureSpace(storage, onWarning),
    readArchive(settings, storage, request),
  ]);
  const facts = await withRetention(storage, goodFacts(backups));
  const unusable = unusableBackups(backups);
  return judge({settings, request, facts, unusable, journal, location: storage.location, space, archive, onWarning});
}

/** The databases status reports on: the configured one, or with --all-databases every one that has a good backup. */
function databasesOf(settings: Settings, request: StatusRequest, facts: readonly BackupFact[]): string[] {
  return request.allDatabases ? [...new Set(facts.map((fact) => fact.database))].sort() : [settings.database.database];
}

/** The verdict on what was read, one location or several: the same thresholds, the same words. */
function judge(read: {
  settings: Settings;
  request: StatusRequest;
  facts: BackupFact[];
  unusable: UnusableBackup[];
  journal: Awaited<ReturnType<typeof readJournal>>;
  location: string;
  space: StorageSpace | undefined;
  archive: StatusInput['archive'];
  onWarning: (message: string) => void;
}): StatusReport {
  const {settings, journal} = read;
  if (journal.rejectedKeys.length > 0) read.onWarning(`${journal.rejectedKeys.length} entries of the run journal could not be read${settings.encryption ? ' or are not authentic' : ''}, and were ignored`);
  return evaluateStatus({
    now: read.request.now ?? new Date(),
    databases: databasesOf(settings, read.request, read.facts),
    backups: read.facts,
    unusable: read.unusable,
    journal: journal.entries.map((stored) => stored.entry),
    rejectedJournalEntries: journal.rejectedKeys.length,
    location: read.location,
    space: read.space,
    policy: statusPolicyFrom(settings.env),
    ...(read.archive ? {archive: read.archive} : {}),
  });
}

function goodFacts(backups: readonly CatalogEntry[]): BackupFact[] {
  return backups.flatMap((entry) =>
    entry.health === 'good' && entry.metadata
      ? [
          {
            name: entry.name,
            database: entry.metadata.database.name,
            type: entry.metadata.backupType,
            createdAt: new Date(entry.metadata.createdAt),
            completedAt: new Date(entry.metadata.completedAt),
            storedBytes: entry.metadata.sizes.storedBytes,
            durationMs: entry.metadata.durationMs,
          },
        ]
      : [],
  );
}

function unusableBackups(backups: readonly CatalogEntry[]): UnusableBackup[] {
  return backups.flatMap((entry) =>
    entry.health === 'good' || entry.health === 'incomplete'
      ? []
      : [{database: entry.metadata?.database.name, reason: UNUSABLE_REASONS[entry.health], ...(entry.unreadable ? {unreadable: entry.unreadable} : {})}],
  );
}

export interface ReplicatedStatusReport extends StatusReport {
  /** Each location against what all of them hold, in the configured order. */
  readonly locations: ReadonlyArray<LocationStatus & {readonly lastSync: RunFact | undefined}>;
}

/**
 * Status over several locations: a backup is good if some location holds it good (the verdict on
 * each type, its age and trend, is the union's), the journal and free space are the primary's
 * (the first location that opens), and each location is judged against the union: how far behind
 * it is, and whether it could be read at all.
 */
export async function readReplicatedStatus(settings: Settings, locations: readonly Location[], failed: readonly LocationFailure[], request: StatusRequest, onWarning: (message: string) => void): Promise<ReplicatedStatusReport> {
  const authenticator = documentAuthenticatorFor(settings.encryption);
  const journalHolder = locations[0]!;
  const [catalogs, journal, space, archive] = await Promise.all([
    readLocationCatalogs(locations, authenticator),
    readJournal(journalHolder.storage, authenticator).catch((error: unknown) => {
      throw storageError(error, journalHolder.storage, 'read the run journal in');
    }),
    measureSpace(journalHolder.storage, onWarning),
    readArchive(settings, journalHolder.storage, request),
  ]);
  const union = new Map<string, BackupFact>();
  for (const catalog of catalogs) if ('catalog' in catalog) for (const fact of goodFacts(catalog.catalog.backups)) if (!union.has(fact.name)) union.set(fact.name, fact);
  const facts = await withRetention(journalHolder.storage, [...union.values()]);
  // Not good anywhere: what status must not pass over in silence, as for one location.
  const unusable = unusableBackups(
    locateBackups(catalogs)
      .filter((backup) => !backup.copies.some((copy) => copy.state === 'good'))
      .flatMap((backup) => backup.copies.find((copy) => copy.entry)?.entry ?? []),
  );
  const report = judge({settings, request, facts, unusable, journal, location: locations.map((location) => location.name).join(', '), space, archive, onWarning});
  const databases = databasesOf(settings, request, facts);
  const walAreas = await readWalAreas(locations, journalHolder, archive, request);
  const views: LocationView[] = settings.locations.map((spec) => {
    const catalog = catalogs.find((candidate) => candidate.location === spec.name);
    const failure = failed.find((candidate) => candidate.location === spec.name);
    const wal = walAreas.get(spec.name);
    if (catalog && 'catalog' in catalog) return {name: spec.name, location: spec.location, good: goodFacts(catalog.catalog.backups), ...(wal ? {wal} : {})};
    return {name: spec.name, location: spec.location, good: undefined, error: (catalog && 'error' in catalog ? catalog.error : failure?.error)?.message ?? 'not opened', ...(wal ? {wal} : {})};
  });
  const judged = evaluateLocations(views, databases);
  const lastSync = journal.entries.map((stored) => stored.entry).find((entry) => entry.operation === 'sync' && entry.outcome === 'succeeded');
  const problems = [...report.problems, ...judged.problems];
  return {
    ...report,
    level: levelOf(problems),
    problems,
    locations: judged.locations.map((location) => ({...location, lastSync: lastSync ? {operation: 'sync', finishedAt: lastSync.finishedAt, host: lastSync.host} : undefined})),
  };
}

/**
 * Each opened location's WAL area, where status reads the archive: what it holds (to be compared
 * with the others: with WAL_ARCHIVE_ACKNOWLEDGE=primary the others may fall behind) and its newest
 * authentic segment, or why it could not be read. The primary's was read already.
 */
async function readWalAreas(locations: readonly Location[], primary: Location, archive: StatusInput['archive'], request: StatusRequest): Promise<Map<string, NonNullable<LocationView['wal']>>> {
  const areas = new Map<string, NonNullable<LocationView['wal']>>();
  if (!request.walCodec) return areas;
  await Promise.all(
    locations.map(async (location) => {
      try {
        // No archive at the primary and no threshold that expects one: readArchive found the area empty.
        const facts = location === primary ? (archive?.facts ?? {keys: [], newest: undefined}) : await readArchiveFacts(location.storage, request.walCodec!);
        areas.set(location.name, {keys: facts.keys, newest: facts.newest?.file});
      } catch (error) {
        areas.set(location.name, {error: (error as Error).message});
      }
    }),
  );
  return areas;
}

/**
 * The newest good backup of each database and type with its retention (Object Lock), which only a
 * stat tells: a few requests, for the rows status shows. A stat that fails leaves it unknown.
 */
async function withRetention(storage: StorageBackend, facts: BackupFact[]): Promise<BackupFact[]> {
  const newest = new Map<string, BackupFact>();
  for (const fact of facts) {
    const key = `${fact.database}\0${fact.type}`;
    if (!newest.has(key) || newest.get(key)!.createdAt < fact.createdAt) newest.set(key, fact);
  }
  const retained = new Map<string, Date>();
  await Promise.all(
    [...newest.values()].map(async (fact) => {
      const object = await storage.stat(fact.name).catch(() => undefined);
      if (object?.retainedUntil) retained.set(fact.name, object.retainedUntil);
    }),
  );
  return facts.map((fact) => (retained.has(fact.name) ? {...fact, retainedUntil: retained.get(fact.name)!} : fact));
}

async function measureSpace(storage: StorageBackend, onWarning: (message: string) => void): Promise<StorageSpace | undefined> {
  if (!storage.space) return undefined;
  try {
    return await storage.space();
  } catch (error) {
    onWarning(`unable to measure the free space of '${storage.location}': ${(error as Error).message}`);
    return undefined;
  }
}
