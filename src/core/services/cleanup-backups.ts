import type {StorageBackend} from '../../contracts/storage.js';
import {errnoCode} from '../errors/index.js';
import {readCatalog, type CatalogEntry} from '../catalog/index.js';
import type {ProgressEvents} from '../events/index.js';
import {acquireStorageLock, describeTakeover} from '../lock/index.js';
import type {DocumentAuthenticator} from '../metadata/index.js';
import {classifyKey, metadataKeyFor, methodOfBackup, pendingKeyFor, verificationKeyFor} from '../naming/index.js';
import {decideWalRetention, listWalArea, type KeptWalStart} from '../wal/index.js';
import {applyRetentionPolicy, type BackupHealth, type RetentionDecision, type RetentionPolicy} from '../retention/index.js';
import {storageError, writeSmallObject} from '../storage/index.js';
import {checkStoredFile, writeVerificationRecord} from '../verification/index.js';

export interface CleanupContext {
  readonly storage: StorageBackend;
  readonly policy: RetentionPolicy;
  readonly events: ProgressEvents;
  /** Present when a key is configured: only authentic metadata counts. */
  readonly authenticator?: DocumentAuthenticator;
  /** The database whose backups this cleanup manages; undefined: every database in the storage (--all-databases). */
  readonly database: string | undefined;
  readonly now?: () => Date;
  /**
   * With several locations: a reason to keep a backup the policy would remove here (the only good
   * copy of a backup another location lacks), or undefined to let it go.
   */
  readonly keepAnyway?: (name: string) => string | undefined;
}

export interface VerificationOutcome {
  readonly name: string;
  /** unreadable: the storage failed; the backup is not counted as verified, nor as damaged. */
  readonly status: 'intact' | 'damaged' | 'unreadable';
  /** Why it is damaged, or why it could not be read. */
  readonly problem?: string;
}

export interface CleanupResult {
  readonly dryRun: boolean;
  readonly policy: RetentionPolicy;
  readonly decisions: readonly RetentionDecision[];
  /** Backups read back in this run because a removal depended on them. */
  readonly verified: readonly VerificationOutcome[];
  /** Staging objects of interrupted runs, and run markers of backups that did finish. */
  readonly leftovers: readonly string[];
  /** Every key deleted (or, in a dry run, that would be). */
  readonly removedKeys: readonly string[];
  /** Uploads that runs staged out of sight and never finished (S3 multipart uploads), aborted (or, in a dry run, that would be). */
  readonly abortedUploads: readonly string[];
  /** The WAL archive: the files no kept physical backup needs, removed (or, in a dry run, that would be), and why the rest is kept. */
  readonly wal: {readonly removedKeys: readonly string[]; readonly keptFrom: string | null; readonly reason: string};
}

/** One step of removing a backup: `mark` writes its run marker, `delete` removes a key. */
interface RemovalStep {
  readonly action: 'mark' | 'delete';
  readonly key: string;
}

/**
 * The steps that remove a backup, in an order that is safe to stop at any point (kill -9). The
 * run marker goes first: a removal cut short then looks like what a killed run left (a data file
 * with a marker and no metadata), which the next cleanup finishes, never like a backup whose
 * metadata was lost, which is kept forever. Then the metadata (without it the backup no longer
 * counts as good), the data file, and the marker last.
 */
function removalSteps(entry: CatalogEntry): RemovalStep[] {
  const name = entry.name;
  const deletion = (key: string): RemovalStep => ({action: 'delete', key});
  const data = entry.object ? [deletion(name)] : [];
  const marker = entry.pending || entry.object ? [deletion(pendingKeyFor(name))] : [];
  const record = entry.hasVerificationRecord ? [deletion(verificationKeyFor(name))] : [];
  if (entry.health === 'incomplete') return [...data, ...record, ...marker];
  return [...(entry.object && !entry.pending ? [{action: 'mark' as const, key: pendingKeyFor(name)}] : []), deletion(metadataKeyFor(name)), ...record, ...data, ...marker];
}

/** The backup a key belongs to (its file, metadata, marker or verification record), if any. */
function backupOfKey(key: string): string | undefined {
  const kind = classifyKey(key);
  if (kind.kind === 'backup') return kind.name;
  if (kind.kind === 'metadata' || kind.kind === 'pending' || kind.kind === 'verification') return kind.backupName;
  return undefined;
}

/** What a read-back found, and for which file: it counts only while the file is still that one. */
interface Finding {
  readonly outcome: VerificationOutcome;
  readonly file: string;
}

function withKeepAnyway(context: CleanupContext, decisions: RetentionDecision[]): RetentionDecision[] {
  const {keepAnyway} = context;
  if (!keepAnyway) return decisions;
  return decisions.map((decision) => {
    const reason = decision.action === 'remove' ? keepAnyway(decision.name) : undefined;
    return reason === undefined ? decision : {...decision, action: 'keep', reason};
  });
}

function fileIdentity(entry: CatalogEntry): string {
  return `${entry.object?.size}:${entry.object?.modifiedAt.toISOString()}:${entry.metadata?.checksums.stored}`;
}

/**
 * Reads back, once, each good backup that a removal waits for, and remembers the result in a
 * verification record so later runs need not read it again. A damaged one stops counting as good,
 * so the older backup it would have replaced is kept. `findings` carries what earlier calls found.
 */
async function decideWithVerifiedReplacements(context: CleanupContext, backups: readonly CatalogEntry[], dryRun: boolean, findings: Map<string, Finding>): Promise<RetentionDecision[]> {
  const {storage, events} = context;
  const now = context.now ?? (() => new Date());
  const byName = new Map(backups.map((entry) => [entry.name, entry]));
  const retention = new Map<string, Date | undefined>();
  const current = (entry: CatalogEntry): VerificationOutcome | undefined => {
    const finding = findings.get(entry.name);
    return finding && finding.file === fileIdentity(entry) ? finding.outcome : undefined;
  };
  for (;;) {
    const decisions = withKeepAnyway(context, applyRetentionPolicy(
      backups.map((entry) => {
        const outcome = current(entry);
        const health: BackupHealth = outcome?.status === 'damaged' ? 'damaged' : entry.health;
        return {
          name: entry.name,
          type: entry.parts.type,
          database: entry.metadata?.database.name,
          startedAt: entry.parts.startedAt,
          sequence: entry.parts.sequence,
          health,
          verified: entry.verification !== undefined || outcome?.status === 'intact',
          method: methodOfBackup(entry.parts),
          ...(retention.get(entry.name) ? {retainedUntil: retention.get(entry.name)!} : {}),
        };
      }),
      context.policy,
      {database: context.database},
    ));
    // A backup to remove that the storage may retain (Object Lock): asked once, and kept with the reason.
    const unasked = decisions.filter((decision) => decision.action === 'remove' && byName.get(decision.name)?.object && !retention.has(decision.name));
    if (unasked.length > 0) {
      for (const decision of unasked) {
        const object = await storage.stat(decision.name).catch(() => undefined);
        retention.set(decision.name, object?.retainedUntil);
      }
      if (unasked.some((decision) => retention.get(decision.name) !== undefined)) continue;
    }
    const awaiting = [...new Set(decisions.flatMap((decision) => decision.awaitingVerification ?? []))].filter((name) => current(byName.get(name)!) === undefined);
    if (awaiting.length === 0) return decisions;
    events.stage('verify', 'started', {detail: `${awaiting.length} backups to read back`});
    const failed: VerificationOutcome[] = [];
    for (const name of awaiting) {
      const entry = byName.get(name)!;
      let outcome: VerificationOutcome;
      try {
        const check = await checkStoredFile(storage, entry.metadata!);
        outcome = check.problem ? {name, status: 'damaged', problem: check.problem} : {name, status: 'intact'};
        if (!check.problem && !dryRun) {
          // Only a cache of work done: a full disk or a read-only record must not stop the cleanup.
          await writeVerificationRecord(storage, entry.metadata!, entry.object!, context.authenticator, now()).catch((error: unknown) =>
            events.warning(`unable to write the verification record of '${name}': ${(error as Error).message}; it will be read again next time`),
          );
        }
      } catch (error) {
        outcome = {name, status: 'unreadable', problem: `could not be read back: ${storageError(error, storage, 'read backup', name).message}`};
      }
      findings.set(name, {outcome, file: fileIdentity(entry)});
      if (outcome.status !== 'intact') failed.push(outcome);
    }
    events.stage('verify', 'finished', {detail: `${awaiting.length - failed.length} intact${failed.length > 0 ? `, ${failed.length} not` : ''}`});
    for (const outcome of failed) {
      const consequence = outcome.status === 'damaged' ? 'it no longer counts as a good backup' : 'it cannot count as verified';
      events.warning(`backup '${outcome.name}' is ${outcome.status}: ${outcome.problem}; ${consequence}, so the older backups it would replace are kept`);
    }
  }
}

/**
 * Where the lock keeps out every other run (a storage with conditional puts), an upload begun
 * before this cleanup took the lock belongs to a run that is gone. Where it keeps out this host's
 * runs only, another host's backup may be uploading: only uploads a day old are taken for stale.
 */
const UNGUARDED_STALE_UPLOAD_AGE_MS = 24 * 3_600_000;

async function abortStaleUploads(storage: StorageBackend, lockedAt: Date, dryRun: boolean): Promise<string[]> {
  if (!storage.abortStaleUploads) return [];
  const olderThan = storage.capabilities.conditionalPut ? lockedAt : new Date(lockedAt.getTime() - UNGUARDED_STALE_UPLOAD_AGE_MS);
  try {
    return await storage.abortStaleUploads(olderThan, {dryRun});
  } catch (error) {
    throw storageError(error, storage, 'abort the unfinished uploads in');
  }
}

/**
 * Removes the archived WAL that no kept physical backup needs, oldest first, so that a run stopped
 * at any point leaves an archive without gaps in what is kept. Runs after the backups' removal, under
 * the same lock (no physical backup starts meanwhile). The kept backups' starts come from their
 * metadata; a kept physical backup whose metadata the storage could not read holds all WAL back.
 */
async function pruneWalArchive(context: CleanupContext, decisions: readonly RetentionDecision[], entries: ReadonlyMap<string, CatalogEntry>, dryRun: boolean): Promise<CleanupResult['wal']> {
  const {storage, events} = context;
  const kept: KeptWalStart[] = [];
  const unknown: string[] = [];
  for (const decision of decisions) {
    const entry = entries.get(decision.name);
    if (decision.action !== 'keep' || !entry || methodOfBackup(entry.parts) !== 'physical') continue;
    if (entry.metadata?.physical) kept.push({backupName: entry.name, startLsn: entry.metadata.physical.startLsn, walSegmentSize: entry.metadata.physical.walSegmentSize});
    // Forged or lost metadata describes no backup anyone can restore; metadata the storage failed to read may.
    else if (entry.health === 'metadata-unreadable') unknown.push(entry.name);
  }
  const listing = await listWalArea(storage);
  if (listing.copies.length === 0) return {removedKeys: [], keptFrom: null, reason: 'the storage holds no WAL archive'};
  const decision = decideWalRetention(listing.copies, kept, unknown);
  const keptFrom = decision.keptFrom ? decision.keptFrom.backupName : null;
  const removedKeys: string[] = [];
  for (const copy of decision.remove) {
    if (!dryRun) {
      try {
        await storage.delete(copy.key);
      } catch (error) {
        if (errnoCode(error) === 'ERETAINED') {
          events.warning(`kept archived WAL '${copy.key}': the storage retains it (${(error as Error).message})`);
          continue;
        }
        throw storageError(error, storage, 'delete archived WAL', copy.key);
      }
    }
    removedKeys.push(copy.key);
  }
  return {removedKeys, keptFrom, reason: decision.reason};
}

/**
 * Applies the retention policy under the storage lock, so no backup is running and every staging
 * object or run marker found is a leftover of a run that crashed.
 */
export async function cleanupBackups(context: CleanupContext, options: {dryRun: boolean}): Promise<CleanupResult> {
  const {storage, events} = context;
  const findings = new Map<string, Finding>();
  events.stage('plan', 'started');
  // Reading backups back can take long (the first cleanup after an upgrade reads every kept one).
  // It needs no lock, so backups go on meanwhile; under the lock, what it found counts only for
  // files that are still the ones it read, and anything new is read then.
  await decideWithVerifiedReplacements(context, (await readCatalog(storage, {authenticator: context.authenticator})).backups, options.dryRun, findings);
  const lock = await acquireStorageLock(storage, options.dryRun ? 'backup cleanup --dry-run' : 'backup cleanup', {evenWhenFull: true});
  const lockedAt = new Date();
  if (lock.tookOverFrom) events.warning(describeTakeover(lock.tookOverFrom));
  if (lock.limitation) events.warning(lock.limitation);
  try {
    const catalog = await readCatalog(storage, {authenticator: context.authenticator});
    const decisions = await decideWithVerifiedReplacements(context, catalog.backups, options.dryRun, findings);
    const entries = new Map(catalog.backups.map((entry) => [entry.name, entry]));
    const finishedMarkers = catalog.backups.filter((entry) => entry.pending && entry.health !== 'incomplete').map((entry) => pendingKeyFor(entry.name));
    const leftovers = [...catalog.leftovers.map((object) => object.key), ...finishedMarkers];
    const removed = decisions.filter((decision) => decision.action === 'remove');
    const steps = [...removed.flatMap((decision) => removalSteps(entries.get(decision.name)!)), ...leftovers.map((key): RemovalStep => ({action: 'delete', key}))];
    // What is reported is what the storage held: a marker written only to make the removal safe is not.
    const written = new Set(steps.filter((step) => step.action === 'mark').map((step) => step.key));
    const removedKeys = [...new Set(steps.filter((step) => step.action === 'delete' && !written.has(step.key)).map((step) => step.key))];
    events.stage('plan', 'finished', {detail: `${removedKeys.length} objects to remove`});
    if (!options.dryRun) {
      events.stage('remove', 'started');
      // A backup the storage turns out to retain (Object Lock) stays whole: its remaining steps are
      // skipped, and the marker written for its removal is taken back.
      const retained = new Set<string>();
      for (const {action, key} of steps) {
        const owner = backupOfKey(key);
        if (owner !== undefined && retained.has(owner)) continue;
        try {
          if (action === 'mark') {
            await writeSmallObject(storage, key, '', {private: true});
            continue;
          }
          await storage.delete(key);
          // There is room now for the lock to say who holds it (see acquireStorageLock's evenWhenFull).
          await lock.recordHolder().catch(() => {});
        } catch (error) {
          if (errnoCode(error) === 'ERETAINED' && owner !== undefined) {
            retained.add(owner);
            if (written.has(pendingKeyFor(owner))) await storage.delete(pendingKeyFor(owner)).catch(() => {});
            events.warning(`kept '${owner}': the storage retains it (${(error as Error).message}); it goes once its retention ends`);
            continue;
          }
          events.stage('remove', 'failed');
          throw storageError(error, storage, action === 'mark' ? 'mark for removal' : 'delete', key);
        }
      }
      events.stage('remove', 'finished', {detail: `${removedKeys.length} objects removed`});
    } else events.stage('remove', 'skipped', {detail: 'dry run'});
    const abortedUploads = await abortStaleUploads(storage, lockedAt, options.dryRun);
    const wal = await pruneWalArchive(context, decisions, entries, options.dryRun);
    return {dryRun: options.dryRun, policy: context.policy, decisions, verified: [...findings.values()].map((finding) => finding.outcome), leftovers, removedKeys, abortedUploads, wal};
  } finally {
    await lock.release().catch(() => {});
  }
}
