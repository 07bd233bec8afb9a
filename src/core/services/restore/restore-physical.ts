import {execa} from 'execa';
import {constants} from 'node:fs';
import {chmod, chown, lchown, lstat, mkdir, open, readdir, rm} from 'node:fs/promises';
import path from 'node:path';
import type {Transform} from 'node:stream';

import {SynapseError, errnoCode, isSynapseError, pluginFailed} from '../../errors/index.js';
import {isPhysicalBackup, type BackupMetadata, type RecordedWalRange} from '../../metadata/index.js';
import {ByteCounter, Sha256Observer, StreamChain, StreamChainFailure, decodeStages} from '../../pipeline/index.js';
import {StderrTail, minimalChildEnvironment} from '../../process/index.js';
import {storageError} from '../../storage/index.js';
import {decideTrust, documentAuthenticatorFor} from '../../trust/index.js';
import {archiveReachFrom, listWalArea, parseLsn, type WalCodec} from '../../wal/index.js';
import {decryptionFor, keyFits, readBackupMetadata} from '../stored-backup.js';
import {startIntegrityChecks} from './integrity-checks.js';
import {assertTargetReachable, recoveryTargetSettings, type RecoveryTarget} from './recovery-target.js';
import {cancelled, type RestoreContext} from './restore-types.js';

export interface PhysicalRestoreRequest {
  readonly name: string;
  /** Absolute; new, or an empty directory. */
  readonly dataDirectory: string;
  readonly target: RecoveryTarget;
  /** The shell command the server runs for `restore_command`, with `%f` and `%p` (see the CLI). */
  readonly restoreCommand: string;
  /** Who the server runs as; when set (running as root), everything restored is given to this user. */
  readonly owner?: {readonly uid: number; readonly gid: number; readonly name: string};
  /** Restore although the backup cannot be authenticated (no key configured): its files are then run by the server unchecked. */
  readonly allowUnauthenticated?: boolean;
  readonly walCodec: WalCodec;
}

export interface PhysicalRestoreResult {
  readonly backupName: string;
  readonly dataDirectory: string;
  readonly target: string;
  readonly wal: RecordedWalRange;
  /** The segment the archive's unbroken WAL ends with, and the timeline recovery follows. */
  readonly archiveReach: {
    readonly throughWalFile: string;
    readonly timeline: number;
    /** The newest segment the archive holds on the recovery's path, and those it lacks before it. */
    readonly newestWalFile: string | undefined;
    readonly missing: readonly string[];
    /** The timelines recovery follows, with the segment numbers each contributes (numbers: this is printed as JSON). */
    readonly path: ReadonlyArray<{readonly timeline: number; readonly firstSegment: number; readonly lastSegment?: number}>;
  };
  /** The timeline the server will promote onto: one past the newest the archive knows (the server probes it the same way). */
  readonly nextTimeline: number;
  readonly extractedBytes: number;
  /** Configuration files the backup lacked (kept outside the data directory) and that were written to let the server start. */
  readonly writtenConfiguration: readonly string[];
  readonly durationMs: number;
  readonly metadata: BackupMetadata;
}

/** The files a backup of a cluster whose configuration lives elsewhere (Debian's /etc/postgresql) lacks, and what lets the restored server start. */
const MINIMAL_CONFIGURATION: ReadonlyArray<[string, string]> = [
  ['postgresql.conf', "# Written by synapse-backup: the backed-up cluster kept its configuration outside its data directory.\n# Add the settings it needs (port, memory); postgresql.auto.conf holds the recovery settings.\nlisten_addresses = 'localhost'\n"],
  ['pg_hba.conf', '# Written by synapse-backup: local connections by the operating-system user of the same name only.\nlocal all all peer\n'],
  ['pg_ident.conf', '# Written by synapse-backup.\n'],
];

/** A directory that does not exist yet (created now, 0700) or exists and is empty; anything else is refused. */
async function claimDataDirectory(directory: string): Promise<{created: boolean}> {
  let stats;
  try {
    stats = await lstat(directory);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
  if (!stats) {
    try {
      await mkdir(directory, {mode: 0o700});
    } catch (error) {
      throw new SynapseError('E_DATA_DIRECTORY', {message: `unable to create the data directory '${directory}': ${(error as Error).message}`, suggestion: 'Create its parent directory first, or pass another --data-dir.'});
    }
    return {created: true};
  }
  if (!stats.isDirectory() || stats.isSymbolicLink()) throw new SynapseError('E_DATA_DIRECTORY', {message: `unable to restore into '${directory}': it is not a directory`});
  const entries = await readdir(directory);
  if (entries.length > 0) {
    const running = entries.includes('postmaster.pid') ? ' (it holds postmaster.pid: a server may be running on it)' : entries.includes('PG_VERSION') ? ' (it is a PostgreSQL data directory)' : '';
    throw new SynapseError('E_DATA_DIRECTORY', {
      message: `unable to restore into '${directory}': it is not empty${running}; a restore never writes over existing files`,
      details: {entries: entries.slice(0, 10)},
    });
  }
  return {created: false};
}

/** Empties (or removes, when this restore created it) a data directory a failed restore wrote into. */
async function abandonDataDirectory(directory: string, created: boolean): Promise<void> {
  if (created) {
    await rm(directory, {recursive: true, force: true});
    return;
  }
  for (const entry of await readdir(directory).catch(() => [] as string[])) await rm(path.join(directory, entry), {recursive: true, force: true});
}

/**
 * GNU tar reading the decoded archive from stdin into the directory: names are kept below it (tar
 * strips a leading `/` and refuses `..`), ownership is never taken from the archive, modes are.
 */
function startTar(directory: string, signal: AbortSignal) {
  const stderr = new StderrTail();
  const child = execa('tar', ['--extract', '--file=-', `--directory=${directory}`, '--no-same-owner', '--preserve-permissions', '--no-overwrite-dir'], {
    env: minimalChildEnvironment(),
    extendEnv: false,
    stdin: 'pipe',
    stdout: 'ignore',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    cancelSignal: signal,
    forceKillAfterDelay: 5000,
  });
  stderr.attach(child.stderr);
  const completion = child.then((result) => {
    if (result.exitCode === 0 && !result.signal) return;
    if ((result as {code?: string}).code === 'ENOENT') throw new SynapseError('E_TOOL_MISSING', {message: "unable to extract the base backup: 'tar' is not installed", suggestion: 'Install GNU tar (Debian/Ubuntu: apt-get install tar).'});
    throw new SynapseError('E_RESTORE_FAILED', {message: `unable to extract the base backup into '${directory}': tar ${result.signal ? `was killed by ${result.signal}` : `exited with status ${result.exitCode}`}${stderr.text() ? `\n${stderr.text()}` : ''}`});
  });
  completion.catch(() => {});
  return {input: child.stdin!, completion, kill: () => child.kill()};
}

async function chownTree(directory: string, owner: {uid: number; gid: number}): Promise<void> {
  await chown(directory, owner.uid, owner.gid);
  for (const entry of await readdir(directory, {withFileTypes: true})) {
    const full = path.join(directory, entry.name);
    if (entry.isDirectory()) await chownTree(full, owner);
    // lchown: a symbolic link is given away itself, never what it points to.
    else await lchown(full, owner.uid, owner.gid);
  }
}

/** Writes a file only where none is (O_EXCL), mode 0600. */
async function writeNewFile(file: string, content: string): Promise<void> {
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Restores a physical backup into a new data directory, ready for the server to recover it to
 * the target with `wal fetch`:
 *  1. the metadata: authentic (its files are run by the server), a physical backup;
 *  2. the target against the backup's end and the archive's unbroken WAL, before anything is written;
 *  3. the stored file's checksum and the key, then the tar extracted (hashed again on the way);
 *  4. recovery.signal and the recovery settings in postgresql.auto.conf; ownership and modes.
 * On any failure the directory is left as it was found: removed when this restore made it, else empty.
 */
export async function restorePhysicalBackup(context: RestoreContext, request: PhysicalRestoreRequest): Promise<PhysicalRestoreResult> {
  const now = context.now ?? (() => new Date());
  const startedAt = now();
  const {events, storage} = context;
  const metadata = await readBackupMetadata(storage, request.name, 'restore');
  if (!isPhysicalBackup(metadata)) {
    throw new SynapseError('E_USAGE', {
      message: `unable to restore '${request.name}' into a data directory: it is a logical backup (pg_dump) of database '${metadata.database.name}'`,
      suggestion: `Restore it into a database without --data-dir: synapse-backup backup restore ${request.name}`,
    });
  }
  const decryption = decryptionFor(context.settings, context.encryptionProviders, metadata, 'restore');
  const trust = await decideTrust(metadata, {
    authenticator: documentAuthenticatorFor(context.settings.encryption),
    ...(decryption ? {keyFits: () => keyFits(storage, metadata, decryption)} : {}),
  });
  if (trust.verdict === 'refused') throw new SynapseError(trust.code, {message: `unable to restore '${request.name}': ${trust.reason}`});
  if (trust.verdict !== 'authentic' && !request.allowUnauthenticated) {
    throw new SynapseError('E_NOT_AUTHENTIC', {
      message: `unable to restore '${request.name}': ${trust.reason}, and a physical backup's files (its configuration among them) are run by the server that starts on them`,
      suggestion: trust.why === 'no-key'
        ? 'Configure the key (BACKUP_ENCRYPTION_KEY_FILE) the backups are written with; if they are written without one and you trust everyone who can write to the storage, pass --allow-unauthenticated.'
        : 'Restore another backup (`synapse-backup backup list`) and check who can write to the storage.',
    });
  }
  if (trust.verdict !== 'authentic') events.warning(`restoring '${request.name}' unauthenticated (${trust.reason}), as --allow-unauthenticated asks: its files are started by the server unchecked`);

  events.stage('prepare', 'started');
  const range = metadata.physical;
  const listing = await listWalArea(storage);
  const reach = await archiveReachFrom(storage, listing, request.walCodec, {timeline: range.timeline, position: parseLsn(range.startLsn)!, segmentSize: range.walSegmentSize}, context.signal);
  for (const refused of reach.refusedHistories) events.warning(`timeline history ${refused}; it was not followed`);
  try {
    assertTargetReachable(request.name, range, reach, request.target);
  } catch (error) {
    events.stage('prepare', 'failed');
    throw error;
  }
  let claimed: {created: boolean};
  try {
    claimed = await claimDataDirectory(request.dataDirectory);
  } catch (error) {
    events.stage('prepare', 'failed');
    throw error;
  }
  events.stage('prepare', 'finished', {detail: `WAL through ${reach.contiguousTo!.file} on timeline ${reach.timeline}`});

  try {
    const checks = startIntegrityChecks(context, metadata, decryption, context.signal);
    await checks.passed;
    const extracted = await extract(context, metadata, request.dataDirectory, decryption?.provider.createDecryptStream.bind(decryption.provider, decryption.key, metadata.encryption!));
    events.stage('configure', 'started');
    const writtenConfiguration: string[] = [];
    for (const [file, content] of MINIMAL_CONFIGURATION) {
      try {
        await writeNewFile(path.join(request.dataDirectory, file), content);
        writtenConfiguration.push(file);
      } catch (error) {
        if (errnoCode(error) !== 'EEXIST') throw error;
      }
    }
    for (const directory of ['pg_wal', path.join('pg_wal', 'archive_status')]) await mkdir(path.join(request.dataDirectory, directory), {recursive: true, mode: 0o700});
    await writeNewFile(path.join(request.dataDirectory, 'recovery.signal'), '');
    const settings = [
      '',
      `# Recovery of ${metadata.backupName}, written by synapse-backup backup restore at ${startedAt.toISOString()}.`,
      `# Once this server takes over, remove archive_mode = off so that it archives its own new timeline.`,
      `restore_command = '${request.restoreCommand.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`,
      ...recoveryTargetSettings(request.target),
      // The timeline the archive was checked along, named: 'latest' would follow a newer one that branched off before this backup.
      `recovery_target_timeline = '${reach.timeline}'`,
      "recovery_target_action = 'promote'",
      // A restored copy must never archive into the archive it came from: its new timeline would become the one `latest` follows.
      'archive_mode = off',
      '',
    ].join('\n');
    const autoConf = await open(path.join(request.dataDirectory, 'postgresql.auto.conf'), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      await autoConf.writeFile(settings);
      await autoConf.sync();
    } finally {
      await autoConf.close();
    }
    await chmod(request.dataDirectory, 0o700);
    if (request.owner) await chownTree(request.dataDirectory, request.owner);
    events.stage('configure', 'finished', {detail: `recovery.signal, postgresql.auto.conf${request.owner ? `, owned by ${request.owner.name}` : ''}`});
    return {
      backupName: metadata.backupName,
      dataDirectory: request.dataDirectory,
      target: request.target.kind === 'latest' ? 'latest' : request.target.kind === 'name' ? `name ${request.target.name}` : `${request.target.kind} ${request.target.text}`,
      wal: range,
      archiveReach: {throughWalFile: reach.contiguousTo!.file, timeline: reach.timeline, newestWalFile: reach.newest?.file, missing: reach.missing, path: reach.path.map((stretch) => ({timeline: stretch.timeline, firstSegment: Number(stretch.first), ...(stretch.last === undefined ? {} : {lastSegment: Number(stretch.last)})}))},
      nextTimeline: Math.max(reach.timeline, ...listing.copies.filter((copy) => copy.file.kind === 'history').map((copy) => copy.file.timeline)) + 1,
      extractedBytes: extracted,
      writtenConfiguration,
      durationMs: now().getTime() - startedAt.getTime(),
      metadata,
    };
  } catch (error) {
    for (const stage of ['extract', 'configure'] as const) events.stage(stage, 'skipped', {detail: 'stopped'});
    await abandonDataDirectory(request.dataDirectory, claimed.created);
    if (context.signal.aborted && !(isSynapseError(error) && error.code === 'E_CANCELLED')) throw cancelled();
    throw error;
  }
}

/** storage -> hash -> decrypt -> decompress -> hash -> tar; both hashes checked at the end. */
async function extract(context: RestoreContext, metadata: BackupMetadata, directory: string, createDecrypt: (() => Transform) | undefined): Promise<number> {
  const {events} = context;
  let source;
  try {
    source = await context.storage.get(metadata.backupName, {signal: context.signal});
  } catch (error) {
    throw storageError(error, context.storage, 'read backup', metadata.backupName);
  }
  let decrypt: Transform | undefined;
  try {
    decrypt = createDecrypt?.();
  } catch (error) {
    source.destroy();
    throw pluginFailed(`decrypt '${metadata.backupName}'`, error);
  }
  const storedHash = new Sha256Observer();
  const plaintextHash = new Sha256Observer();
  const count = new ByteCounter((bytes) => events.stage('extract', 'progress', {bytes}));
  const chain = new StreamChain(context.signal);
  const tar = startTar(directory, chain.signal);
  events.stage('extract', 'started', {detail: directory});
  try {
    await chain.run(
      [
        {stage: 'verify', stream: source},
        {stage: 'verify', stream: storedHash},
        ...decodeStages(metadata, decrypt).map(({step, stream}) => ({stage: step, stream})),
        {stage: 'extract', stream: plaintextHash},
        {stage: 'extract', stream: count},
        {stage: 'extract', stream: tar.input},
      ],
      [{stage: 'extract', promise: tar.completion}],
    );
  } catch (error) {
    events.stage('extract', 'failed');
    tar.kill();
    await tar.completion.catch(() => {});
    if (!(error instanceof StreamChainFailure)) throw error;
    if (error.cancelled) throw cancelled();
    if (isSynapseError(error.error)) throw error.error;
    throw new SynapseError(error.stage === 'decompress' || error.stage === 'decrypt' ? 'E_INTEGRITY' : 'E_RESTORE_FAILED', {message: `unable to extract '${metadata.backupName}' (${error.stage}): ${(error.error as Error).message}`, cause: error.error});
  }
  if (storedHash.digest !== metadata.checksums.stored || plaintextHash.digest !== metadata.checksums.plaintext) {
    events.stage('extract', 'failed');
    throw new SynapseError('E_INTEGRITY', {
      message: `unable to restore '${metadata.backupName}': the ${storedHash.digest === metadata.checksums.stored ? 'decoded archive' : 'stored file'} does not match its checksum on the extracting read; what was extracted was removed`,
    });
  }
  events.stage('extract', 'finished', {bytes: count.bytes});
  return count.bytes;
}
