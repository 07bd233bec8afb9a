import {lstatSync, readFileSync, unlinkSync} from 'node:fs';
import {mkdir, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises';
import path from 'node:path';

/*
 * PostgreSQL's archiver runs archive_command once per file, one at a time. A push that archives the
 * files already waiting (`.ready`) along with the one asked for leaves an acknowledgement for each
 * in a spool directory once every location holds it durably; the archiver's later calls for those
 * files find it and return at once, before the CLI even loads. Only node: modules here: this is
 * read on that fast path.
 */

/** The spool's directory name under pg_wal, where WAL_SPOOL_DIR does not say otherwise. */
export const SPOOL_DIRECTORY_NAME = 'synapse-backup-spool';

const ACKNOWLEDGEMENT_SUFFIX = '.ok';
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

/**
 * Only a directory this user owns and nobody else can write to may say a file is archived: an
 * acknowledgement planted there would make PostgreSQL recycle WAL that no location holds.
 */
export function spoolIsPrivate(directory: string): boolean {
  try {
    const stats = lstatSync(directory);
    return stats.isDirectory() && stats.uid === process.getuid?.() && (stats.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

function acknowledgementPath(spool: string, file: string): string {
  return path.join(spool, `${file}${ACKNOWLEDGEMENT_SUFFIX}`);
}

/**
 * Whether the spool says this file is archived at these locations: its acknowledgement exists and
 * is no older than the file (a file written again since, or recycled under this name, is newer),
 * and the spool's acknowledgements are for these locations. The launcher applies the same rule.
 */
export function acknowledgementMatches(spool: string, walPath: string, bound: string | undefined): boolean {
  if (bound === undefined) return false;
  try {
    const wal = lstatSync(walPath, {bigint: true});
    const acknowledgement = lstatSync(acknowledgementPath(spool, path.basename(walPath)), {bigint: true});
    if (!wal.isFile() || !acknowledgement.isFile() || wal.mtimeNs > acknowledgement.mtimeNs) return false;
    return readFileSync(path.join(spool, LOCATIONS_FILE), 'utf8') === `${bound}\n`;
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

/** Records that a file is archived at every location the spool is bound to; written whole (a rename), after the fact. */
export async function acknowledge(spool: string, walPath: string, key: string): Promise<void> {
  const file = path.basename(walPath);
  const staging = `${acknowledgementPath(spool, file)}.${process.pid}.tmp`;
  await writeFile(staging, `${JSON.stringify({file, key, acknowledgedAt: new Date().toISOString()})}\n`, {mode: 0o600});
  await rename(staging, acknowledgementPath(spool, file));
}

/** The files waiting for the archiver, as it takes them: timeline history first, then by name (oldest first). */
export async function readyFiles(pgWal: string): Promise<string[]> {
  const names = (await readdir(path.join(pgWal, 'archive_status')).catch(() => [] as string[])).filter((name) => name.endsWith('.ready')).map((name) => name.slice(0, -'.ready'.length));
  return names.sort((a, b) => Number(b.endsWith('.history')) - Number(a.endsWith('.history')) || (a < b ? -1 : a > b ? 1 : 0));
}

/** Removes the acknowledgements of files PostgreSQL has recycled or removed, and what a killed writer left. */
export async function pruneAcknowledgements(spool: string, pgWal: string): Promise<void> {
  const entries = await readdir(spool).catch(() => [] as string[]);
  const present = new Set(await readdir(pgWal).catch(() => [] as string[]));
  await Promise.all(
    entries
      .filter((entry) => entry.endsWith('.tmp') || (entry.endsWith(ACKNOWLEDGEMENT_SUFFIX) && !present.has(entry.slice(0, -ACKNOWLEDGEMENT_SUFFIX.length))))
      .map((entry) => rm(path.join(spool, entry), {force: true})),
  );
}
