import {randomBytes} from 'node:crypto';

import type {StorageBackend} from '../../contracts/storage.js';
import {isRecord, parseAuthentication, type DocumentAuthentication, type DocumentAuthenticator} from '../metadata/index.js';
import {JOURNAL_KEY_PATTERN, journalKey} from '../naming/index.js';
import {listAll, readSmallObject, writeSmallObject} from '../storage/index.js';

/**
 * A small journal of runs, kept in the backup storage itself: a monitoring host that can only read
 * the storage learns from it what failed lately and when the last verify and restore test passed.
 * Each run writes one small object of its own (no append to a shared object, which no blob store
 * can do safely from two hosts); the journal is pruned after each write to stay bounded.
 */
export const JOURNAL_OPERATIONS = ['backup', 'verify', 'restore-test', 'restore', 'cleanup', 'sync'] as const;
export type JournalOperation = (typeof JOURNAL_OPERATIONS)[number];
export type JournalOutcome = 'succeeded' | 'failed';

export interface JournalEntry {
  readonly formatVersion: 1;
  /** Tells a journal entry from every other signed document: a MAC'd metadata file cannot pass for one. */
  readonly kind: 'synapse-backup/run';
  readonly operation: JournalOperation;
  readonly outcome: JournalOutcome;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly host: string;
  readonly database?: string;
  readonly backupName?: string;
  readonly backupType?: string;
  readonly error?: {readonly code: string; readonly message: string};
  /**
   * Failures of this operation so far, this one included, carried from entry to entry: a counter
   * that survives pruning, because the newest failure of each operation is never pruned.
   */
  readonly failureCount: number;
  readonly authentication?: DocumentAuthentication;
}

export type NewJournalEntry = Omit<JournalEntry, 'formatVersion' | 'kind' | 'failureCount' | 'authentication'>;

/** Entries kept beyond the newest of each operation and outcome. */
export const JOURNAL_MAX_ENTRIES = 200;
const MAX_ENTRY_BYTES = 16 * 1024;
const MAX_TEXT = 2000;

export interface StoredJournalEntry {
  readonly key: string;
  readonly entry: JournalEntry;
}

export interface JournalReading {
  /** Newest first. */
  readonly entries: readonly StoredJournalEntry[];
  /** Keys of entries that were unreadable or, with a key configured, not authentic: never believed. */
  readonly rejectedKeys: readonly string[];
}

function parseEntry(text: string): JournalEntry | undefined {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(document) || document.formatVersion !== 1 || document.kind !== 'synapse-backup/run') return undefined;
  if (!JOURNAL_OPERATIONS.includes(document.operation as JournalOperation)) return undefined;
  if (document.outcome !== 'succeeded' && document.outcome !== 'failed') return undefined;
  for (const field of ['startedAt', 'finishedAt'] as const) if (typeof document[field] !== 'string' || Number.isNaN(Date.parse(document[field] as string))) return undefined;
  if (!Number.isSafeInteger(document.durationMs) || (document.durationMs as number) < 0) return undefined;
  if (!Number.isSafeInteger(document.failureCount) || (document.failureCount as number) < 0) return undefined;
  if (typeof document.host !== 'string') return undefined;
  for (const field of ['database', 'backupName', 'backupType'] as const) if (document[field] !== undefined && typeof document[field] !== 'string') return undefined;
  if (document.error !== undefined && !(isRecord(document.error) && typeof document.error.code === 'string' && typeof document.error.message === 'string')) return undefined;
  if (document.authentication !== undefined && typeof parseAuthentication(document.authentication) === 'string') return undefined;
  return document as unknown as JournalEntry;
}

/** Newest first, by the time in the key (which sorts as text), then by key. */
function newestFirst(a: {key: string}, b: {key: string}): number {
  return a.key < b.key ? 1 : a.key > b.key ? -1 : 0;
}

/**
 * The journal's entries, newest first. With a key configured only authentic entries count: someone
 * who can write to the storage must not be able to hide a failure or fake a passed restore test.
 */
export async function readJournal(storage: StorageBackend, authenticator: DocumentAuthenticator | undefined): Promise<JournalReading> {
  const keys = (await listAll(storage, ['synapse-backup.journal.'])).filter((object) => JOURNAL_KEY_PATTERN.test(object.key)).sort(newestFirst);
  const rejectedKeys: string[] = [];
  const read = await Promise.all(
    keys.map(async ({key}): Promise<StoredJournalEntry | undefined> => {
      let text: string;
      try {
        text = await readSmallObject(storage, key, MAX_ENTRY_BYTES);
      } catch {
        // Pruned by another run between list and read, or unreadable: not an entry.
        return undefined;
      }
      const entry = parseEntry(text);
      if (!entry || (authenticator && (await authenticator.verify(entry)).status !== 'authentic')) {
        rejectedKeys.push(key);
        return undefined;
      }
      return {key, entry};
    }),
  );
  return {entries: read.filter((entry): entry is StoredJournalEntry => entry !== undefined), rejectedKeys};
}

/**
 * Which journal keys to delete: all but the newest `keep`, except that the newest entry of each
 * kind (operation and outcome) is always kept: the last good restore test survives a week of
 * hourly backups, and so does the failure counter. An entry without a kind (unreadable, not
 * authentic) shields nothing. `entries` newest first. Pure.
 */
export function journalKeysToPrune(entries: readonly {key: string; kind: string | undefined}[], keep = JOURNAL_MAX_ENTRIES): string[] {
  const newestOfKind = new Set<string>();
  const seen = new Set<string>();
  for (const entry of entries) {
    if (entry.kind === undefined || seen.has(entry.kind)) continue;
    seen.add(entry.kind);
    newestOfKind.add(entry.key);
  }
  return entries.slice(keep).filter((entry) => !newestOfKind.has(entry.key)).map((entry) => entry.key);
}

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

/**
 * Appends one entry (signed with a key configured) and prunes the journal. Entries that cannot be
 * read or authenticated are pruned like the others, oldest first, so planted ones cannot fill it.
 */
export async function appendJournalEntry(storage: StorageBackend, entry: NewJournalEntry, authenticator: DocumentAuthenticator | undefined, now: Date): Promise<JournalEntry> {
  const before = await readJournal(storage, authenticator);
  const lastFailure = before.entries.find((stored) => stored.entry.operation === entry.operation && stored.entry.outcome === 'failed');
  const previousFailures = lastFailure?.entry.failureCount ?? 0;
  const unsigned: JournalEntry = {
    formatVersion: 1,
    kind: 'synapse-backup/run',
    ...entry,
    ...(entry.error ? {error: {code: entry.error.code, message: clip(entry.error.message)}} : {}),
    failureCount: previousFailures + (entry.outcome === 'failed' ? 1 : 0),
  };
  const written = authenticator ? await authenticator.sign(unsigned) : unsigned;
  const key = journalKey(now, randomBytes(4).toString('hex'));
  await writeSmallObject(storage, key, `${JSON.stringify(written)}\n`, {ifNotExists: true, private: true});

  // Pruned from what was read before writing: an entry another run added meanwhile waits for the next prune.
  const described = [
    {key, kind: `${written.operation}/${written.outcome}`},
    ...before.entries.map((stored) => ({key: stored.key, kind: `${stored.entry.operation}/${stored.entry.outcome}`})),
    ...before.rejectedKeys.map((rejected) => ({key: rejected, kind: undefined})),
  ].sort(newestFirst);
  for (const stale of journalKeysToPrune(described)) await storage.delete(stale).catch(() => {});
  return written;
}
