import {lstatSync, readFileSync, unlinkSync} from 'node:fs';
import {lstat, mkdir, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises';
import path from 'node:path';

/*
 * PostgreSQL's archiver runs archive_command once per file, one at a time. A push that archives the
 * files already waiting (`.ready`) along with the one asked for leaves an acknowledgement for each
 * in a spool directory once every location holds it durably; the archiver's later calls for those
 * files find it and return at once, before the CLI even loads. Only node: modules here: this is
 * read on that fast path.
 *
 * An acknowledgement is believed for what it is, not for where it lies: a regular file of this
 * user's (another user's planted file is not, and cannot be made so), no older than the WAL file,
 * whose first line names that file and the settings it holds for. So a file renamed from another
 * file's acknowledgement says the wrong name, and one kept from other locations the wrong
 * settings. That takes the launcher only shell built-ins (test and read), no process of its own:
 * the archiver calls it once per file, and each program started there cost it milliseconds.
 */

/** The spool's directory name under pg_wal, where WAL_SPOOL_DIR does not say otherwise. */
export const SPOOL_DIRECTORY_NAME = 'synapse-backup-spool';

const ACKNOWLEDGEMENT_SUFFIX = '.ok';
const PENDING_SUFFIX = '.pending';
/** How long the archiver's call for a file a running push has in hand waits for it, at most, before pushing it itself. */
export const PENDING_WAIT_MS = 60_000;
/** How often that call looks again: files are acknowledged every few tens of milliseconds in a backlog. */
const PENDING_POLL_MS = 10;
/** The locations the spool's acknowledgements hold for, as one line (see boundLocations). */
const LOCATIONS_FILE = 'locations';

/** Where the acknowledgements for files of this pg_wal go; undefined for a file outside a pg_wal, unless configured. */
export function spoolDirectoryOf(walPath: string, configured: string | undefined): string | undefined {
  if (configured) return path.resolve(configured);
  const directory = path.dirname(path.resolve(walPath));
  return path.basename(directory) === 'pg_wal' ? path.join(directory, SPOOL_DIRECTORY_NAME) : undefined;
}

/**
 * The settings that say where files go and when a file counts as archived, as the process
 * environment has them, in one line that the launcher (bin/synapse-backup, a shell script) builds
 * the same way and compares without starting Node:
 * "v2|BACKUP_LOCATIONS|BACKUP_STORAGE|BACKUP_DIR|WAL_ARCHIVE_ACKNOWLEDGE". An acknowledgement made
 * once the primary held a file says nothing of the others, so it must not answer a push that
 * waits for every location. Undefined where the line cannot be compared faithfully (a value with
 * a line break, a setting from ./.env, which the shell does not read): then nothing is pushed ahead.
 */
export function boundLocations(processEnv: Readonly<Record<string, string | undefined>>, dotenv: Readonly<Record<string, string | undefined>> = {}): string | undefined {
  const names = ['BACKUP_LOCATIONS', 'BACKUP_STORAGE', 'BACKUP_DIR', 'WAL_ARCHIVE_ACKNOWLEDGE'];
  if (names.some((name) => dotenv[name] !== undefined && processEnv[name] === undefined)) return undefined;
  const values = names.map((name) => processEnv[name] ?? '');
  if (values.some((value) => /[\r\n]/.test(value))) return undefined;
  return ['v2', ...values].join('|');
}

/** Owned by the user this process runs as: the shell's `test -O`. */
function ownedByThisUser(uid: bigint | number): boolean {
  const euid = process.geteuid?.();
  return euid !== undefined && BigInt(uid) === BigInt(euid);
}

/**
 * Acknowledgements are written only into a directory this user owns and nobody else can write to.
 * Reading one does not depend on that (another user's file is never believed), but a spool others
 * can write to is a mistake to report, and they could remove what is there.
 */
export function spoolIsPrivate(directory: string): boolean {
  try {
    const stats = lstatSync(directory);
    return stats.isDirectory() && ownedByThisUser(stats.uid) && (stats.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

function acknowledgementPath(spool: string, file: string): string {
  return path.join(spool, `${file}${ACKNOWLEDGEMENT_SUFFIX}`);
}

/** The first line of a file's acknowledgement, which the launcher compares as it is: the file's name and the settings it is bound to. */
export function acknowledgementLine(file: string, bound: string): string {
  return `${file}|${bound}`;
}

/**
 * Whether the spool says this file is archived at these locations, by the rule the launcher also
 * applies (see the top of this module): the spool is a directory of this user's, not a link; the
 * acknowledgement is a regular file of this user's, no older than the file (a file written again
 * since, or recycled under this name, is newer), whose first line names this file and `bound`.
 */
export function acknowledgementMatches(spool: string, walPath: string, bound: string | undefined): boolean {
  if (bound === undefined) return false;
  try {
    const directory = lstatSync(spool, {bigint: true});
    if (!directory.isDirectory() || !ownedByThisUser(directory.uid)) return false;
    const wal = lstatSync(walPath, {bigint: true});
    const file = path.basename(walPath);
    const acknowledgementFile = acknowledgementPath(spool, file);
    const acknowledgement = lstatSync(acknowledgementFile, {bigint: true});
    if (!wal.isFile() || !acknowledgement.isFile() || !ownedByThisUser(acknowledgement.uid) || wal.mtimeNs > acknowledgement.mtimeNs) return false;
    const [firstLine] = readFileSync(acknowledgementFile, 'utf8').split('\n', 1);
    return firstLine === acknowledgementLine(file, bound);
  } catch {
    return false;
  }
}

/** Used once: the archiver asks for a file once it has been told it is archived no more. */
export function consumeAcknowledgement(spool: string, file: string): void {
  try {
    unlinkSync(acknowledgementPath(spool, file));
  } catch {
    // Gone already: nothing to consume.
  }
}

/**
 * Creates the spool where it is missing, and binds it to these locations: acknowledgements made
 * for other ones are removed. Says why the spool cannot be used, where it cannot.
 */
export async function prepareSpool(spool: string, bound: string): Promise<string | undefined> {
  await mkdir(spool, {mode: 0o700, recursive: true}).catch(() => {});
  if (!spoolIsPrivate(spool)) {
    return `the WAL spool '${spool}' is not a directory of this user's that only it can write to, so no file is archived ahead of PostgreSQL's asking (WAL_SPOOL_DIR)`;
  }
  const file = path.join(spool, LOCATIONS_FILE);
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === `${bound}\n`) return undefined;
  // The locations changed: what was acknowledged is not known to be at the new ones.
  await rm(file, {force: true});
  const entries = await readdir(spool).catch(() => [] as string[]);
  await Promise.all(entries.filter((entry) => entry.endsWith(ACKNOWLEDGEMENT_SUFFIX)).map((entry) => rm(path.join(spool, entry), {force: true})));
  const staging = `${file}.${process.pid}.tmp`;
  await writeFile(staging, `${bound}\n`, {mode: 0o600});
  await rename(staging, file);
  return undefined;
}

/**
 * Records that a file is archived at every location the spool is bound to; written whole (a
 * rename), after the fact. The first line is what the launcher compares; the second, for people,
 * says under which key and when.
 */
export async function acknowledge(spool: string, walPath: string, key: string, bound: string): Promise<void> {
  const file = path.basename(walPath);
  const staging = `${acknowledgementPath(spool, file)}.${process.pid}.tmp`;
  await writeFile(staging, `${acknowledgementLine(file, bound)}\n${JSON.stringify({file, key, acknowledgedAt: new Date().toISOString()})}\n`, {mode: 0o600});
  await rename(staging, acknowledgementPath(spool, file));
}

/*
 * A push returns to the archiver once the file it was asked for is durable, and goes on with the
 * files it archives ahead (see push-ahead). It marks each of them pending in the spool first,
 * naming itself (its PID and start time, which a reused PID does not share), and removes the mark
 * once the file is acknowledged or has failed. The archiver's call for a file marked by a push that
 * still runs waits for that, instead of archiving the file a second time beside it. A mark grants
 * nothing: only an acknowledgement answers a call, and a mark of a push that is gone, or one kept
 * longer than PENDING_WAIT_MS (about that, in the launcher), is passed over (the call archives the file itself). The launcher
 * applies the same rule with shell built-ins and /proc.
 */

/** A process as the spool names it: its PID and its start time (clock ticks after boot, field 22 of /proc/PID/stat); undefined without /proc. */
export function processIdentity(pid: number = process.pid): string | undefined {
  const started = processStartTime(pid);
  return started === undefined ? undefined : `${pid} ${started}`;
}

function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may hold spaces and parentheses: count from its closing one. Field 3 comes first.
    const started = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19];
    return started !== undefined && /^\d+$/.test(started) ? started : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the process an identity names still runs, and is that process, not a later one under its PID. */
export function identityIsLive(identity: string): boolean {
  const match = /^(\d+) (\d+)$/.exec(identity);
  return match !== null && processStartTime(Number(match[1])) === match[2];
}

function pendingPath(spool: string, file: string): string {
  return path.join(spool, `${file}${PENDING_SUFFIX}`);
}

/** Who marked a file pending: the identity in a regular file of this user's; undefined where there is no such mark. */
export function pendingMark(spool: string, file: string): string | undefined {
  try {
    const mark = pendingPath(spool, file);
    const stats = lstatSync(mark);
    if (!stats.isFile() || !ownedByThisUser(stats.uid)) return undefined;
    return readFileSync(mark, 'utf8').split('\n', 1)[0];
  } catch {
    return undefined;
  }
}

/** Whether another push that still runs has the file in hand. */
export function pendingElsewhere(spool: string, file: string, identity: string | undefined): boolean {
  const mark = pendingMark(spool, file);
  return mark !== undefined && mark !== identity && identityIsLive(mark);
}

/** Marks files pending for this push (see above). */
export async function markPending(spool: string, files: readonly string[], identity: string): Promise<void> {
  await Promise.all(files.map((file) => writeFile(pendingPath(spool, path.basename(file)), `${identity}\n`, {mode: 0o600})));
}

/** Removes this push's mark of a file, after its acknowledgement is written (or it failed); another push's mark stays. */
export async function clearPending(spool: string, file: string, identity: string): Promise<void> {
  if (pendingMark(spool, path.basename(file)) === identity) await rm(pendingPath(spool, path.basename(file)), {force: true});
}

/**
 * Waits while a push that still runs has the file in hand (see above), at most until `deadline`
 * (milliseconds, Date.now()). Resolves either way; what answers the call is the acknowledgement.
 */
export async function awaitPending(spool: string, file: string, deadline: number): Promise<void> {
  const mark = pendingMark(spool, file);
  if (mark === undefined || !identityIsLive(mark)) return;
  while (Date.now() < deadline && pendingMark(spool, file) === mark && identityIsLive(mark)) {
    await new Promise((resolve) => setTimeout(resolve, PENDING_POLL_MS));
  }
}

/**
 * The files a push of `requested` archives ahead: those waiting for the archiver after it, in its
 * order, that are neither acknowledged already nor in the hands of another push that still runs
 * (`identity` is this push's own, see processIdentity).
 */
export async function filesToPushAhead(pgWal: string, requested: string, spool: string | undefined, bound: string | undefined, limit: number, identity = processIdentity()): Promise<string[]> {
  if (spool === undefined || bound === undefined || limit <= 0) return [];
  return (await readyFiles(pgWal))
    .filter((name) => name !== requested && !acknowledgementMatches(spool, path.join(pgWal, name), bound) && !pendingElsewhere(spool, name, identity))
    .slice(0, limit);
}

/** The files waiting for the archiver, as it takes them: timeline history first, then by name (oldest first). */
export async function readyFiles(pgWal: string): Promise<string[]> {
  const names = (await readdir(path.join(pgWal, 'archive_status')).catch(() => [] as string[])).filter((name) => name.endsWith('.ready')).map((name) => name.slice(0, -'.ready'.length));
  return names.sort((a, b) => Number(b.endsWith('.history')) - Number(a.endsWith('.history')) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Removes the acknowledgements of files PostgreSQL has recycled or removed, those the launcher has
 * used (it empties them: removing one would cost the archiver's call a process), and what a killed
 * writer left: staging files, and pending marks of pushes that no longer run.
 */
export async function pruneAcknowledgements(spool: string, pgWal: string): Promise<void> {
  const entries = await readdir(spool).catch(() => [] as string[]);
  const present = new Set(await readdir(pgWal).catch(() => [] as string[]));
  const used = async (entry: string): Promise<boolean> => (await lstat(path.join(spool, entry)).catch(() => undefined))?.size === 0;
  const stale = await Promise.all(
    entries.map(async (entry) => {
      if (entry.endsWith('.tmp')) return true;
      if (entry.endsWith(PENDING_SUFFIX)) {
        const mark = pendingMark(spool, entry.slice(0, -PENDING_SUFFIX.length));
        return mark === undefined || !identityIsLive(mark);
      }
      if (!entry.endsWith(ACKNOWLEDGEMENT_SUFFIX)) return false;
      return !present.has(entry.slice(0, -ACKNOWLEDGEMENT_SUFFIX.length)) || (await used(entry));
    }),
  );
  await Promise.all(entries.filter((_entry, index) => stale[index]).map((entry) => rm(path.join(spool, entry), {force: true})));
}
