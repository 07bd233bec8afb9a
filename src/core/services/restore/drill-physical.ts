import {randomBytes} from 'node:crypto';
import {existsSync} from 'node:fs';
import {lstat, mkdir, readFile, readdir, rm, statfs, writeFile} from 'node:fs/promises';
import {createServer} from 'node:net';
import path from 'node:path';
import type pg from 'pg';

import {SynapseError, cancelledError, isSynapseError} from '../../errors/index.js';
import {processStartTime} from '../../lock/process-identity.js';
import {compactTimestamp, connectScratch, postmasterRunningOn, runScratchClient, startScratchServer, stopOrphanedPostmaster, type ScratchServer} from '../../postgres/index.js';
import {formatBytes, formatDuration} from '../../units/index.js';
import {formatLsn, parseLsn, type WalCodec} from '../../wal/index.js';
import {readBackupMetadata} from '../stored-backup.js';
import {assertSameCluster, judgeReplay, recoveryEndOf, type RecoveryEnd} from './replay-judgement.js';
import {restorePhysicalBackup, type PhysicalRestoreResult} from './restore-physical.js';
import type {RecoveryTarget} from './recovery-target.js';
import type {RestoreContext} from './restore-types.js';

/** A drill's scratch directory under BACKUP_DRILL_DIR: `synapse-drill-<UTC time>_<random>`. Nothing else there is ever removed. */
export const DRILL_DIRECTORY = /^synapse-drill-\d{8}_\d{6}_[0-9a-f]{6}$/;
const MARKER = 'drill.json';
const DATA = 'data';

export interface PhysicalDrillRequest {
  readonly name: string;
  readonly target: RecoveryTarget;
  /** restore_command, as backup restore writes it (the launcher with the portable settings). */
  readonly restoreCommand: string;
  /** The user the server runs as, when this runs as root. */
  readonly owner?: {readonly uid: number; readonly gid: number; readonly name: string};
  /** Where a major version's `postgres` and `pg_amcheck` are (the backup's, from its metadata). */
  readonly binDirectoryFor: (major: number) => string;
  readonly walCodec: WalCodec;
  readonly allowUnauthenticated?: boolean;
  /** Role names to connect as first (the configured user); the cluster's bootstrap superuser is found from there. */
  readonly roles: readonly string[];
}

export interface PhysicalDrillResult {
  readonly backupName: string;
  readonly backupType: string;
  readonly method: 'physical';
  readonly target: string;
  readonly systemIdentifier: string;
  readonly archiveReach: PhysicalRestoreResult['archiveReach'];
  /** Where recovery ended, on which timeline, and PostgreSQL's reason. */
  readonly recoveryEnd: {readonly lsn: string; readonly timeline: number; readonly reason: string};
  readonly replayedBytes: number;
  readonly replayBytesPerSecond: number;
  /** The databases that accepted a connection. */
  readonly databases: readonly string[];
  /** What checked the data: pg_amcheck (heap and B-tree), or, where amcheck is not available, a full read of every table. */
  readonly integrity: {readonly tool: 'pg_amcheck' | 'table scan'; readonly detail: string};
  /** Scratch directories of drills that died, removed (their server stopped) before this one began. */
  readonly reclaimed: readonly string[];
  readonly steps: {readonly restoreMs: number; readonly recoveryMs: number; readonly checkMs: number};
  readonly extractedBytes: number;
  readonly durationMs: number;
}

interface DrillMarker {
  readonly pid: number;
  readonly processStart: string | undefined;
  readonly backupName: string;
  readonly startedAt: string;
}

function drillAlive(marker: DrillMarker): boolean {
  return marker.processStart !== undefined && processStartTime(marker.pid) === marker.processStart;
}

/**
 * Removes the scratch directories of drills that died (kill -9, a lost machine): this user's
 * directories named as drills name them, whose drill process is gone; a postmaster still running
 * on one is stopped first (it is found by its working directory, never by PID alone). A running
 * drill's directory, or anything not made by a drill, is never touched.
 */
export async function reclaimDeadDrills(parent: string, onWarning: (message: string) => void): Promise<string[]> {
  const removed: string[] = [];
  const uid = process.getuid?.();
  for (const entry of await readdir(parent).catch(() => [] as string[])) {
    if (!DRILL_DIRECTORY.test(entry)) continue;
    const directory = path.join(parent, entry);
    const stats = await lstat(directory).catch(() => undefined);
    if (!stats?.isDirectory() || (uid !== undefined && stats.uid !== uid)) continue;
    let marker: DrillMarker | undefined;
    try {
      marker = JSON.parse(await readFile(path.join(directory, MARKER), 'utf8')) as DrillMarker;
    } catch {
      // A drill writes its marker right after making the directory; one without is older than an hour or it is still being made.
      if (Date.now() - stats.mtimeMs < 3_600_000) continue;
    }
    if (marker && drillAlive(marker)) continue;
    const data = path.join(directory, DATA);
    const postmaster = postmasterRunningOn(data);
    if (postmaster !== undefined) await stopOrphanedPostmaster(postmaster, data);
    if (postmasterRunningOn(data) !== undefined) {
      onWarning(`unable to stop the server (PID ${postmaster}) of the dead drill in '${directory}'; it was left alone`);
      continue;
    }
    await rm(directory, {recursive: true, force: true});
    removed.push(directory);
    onWarning(`removed '${directory}', left by a drill${marker ? ` of ${marker.backupName} started at ${marker.startedAt}` : ''} that did not finish${postmaster === undefined ? '' : ` (its server, PID ${postmaster}, was stopped)`}`);
  }
  return removed;
}

/** What a restored cluster needs on disk: the extracted base backup, a few WAL segments in flight, the server's own files. */
export function drillSpaceNeeded(plaintextBytes: number, segmentSize: number): number {
  return plaintextBytes + 4 * segmentSize + 64 * 1024 * 1024;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number};
      server.close(() => resolve(port));
    });
  });
}

/** A timeout as it was most likely written: `24 h`, `90 min`, `2 s`. */
function describeTimeout(milliseconds: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['min', 60_000], ['s', 1000]] as const) {
    if (milliseconds >= size && milliseconds % size === 0) return `${milliseconds / size} ${unit}`;
  }
  return formatDuration(milliseconds);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** 57P03: the server is starting up or still recovering (hot_standby off lets nobody in until it has promoted). */
const NOT_YET = new Set(['57P03']);

/** Waits until the server has recovered and promoted, then connects as the first role of `roles` that exists. */
async function awaitPromotion(server: ScratchServer, roles: readonly string[], signal: AbortSignal, backupName: string): Promise<{client: pg.Client; role: string}> {
  for (;;) {
    if (signal.aborted) throw cancelledError('finish the drill', 'The drill restores into its own scratch directory only, which was removed; nothing else was touched.');
    const exit = server.exited();
    if (exit) {
      const tail = server.log().trim().split('\n').slice(-12).join('\n');
      throw new SynapseError('E_RESTORE_TEST_FAILED', {
        message: `the drill's server on '${backupName}' stopped during recovery (${exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.code}`}); it did not come up:\n${tail}`,
        suggestion: "Read the server's log above (a target the WAL does not reach, a missing or damaged segment, a setting this machine cannot honour). Do not count on this backup until a drill of it passes.",
      });
    }
    let unknownRoles = 0;
    for (const role of roles) {
      try {
        const client = await connectScratch(server, role);
        const recovering = (await client.query<{r: boolean}>('select pg_is_in_recovery() as r')).rows[0]!.r;
        if (!recovering) return {client, role};
        await client.end();
        break;
      } catch (error) {
        const code = (error as {code?: string}).code;
        if (code === '28000' || /role .* does not exist/.test((error as Error).message)) {
          unknownRoles++;
          continue;
        }
        if (code !== undefined && !NOT_YET.has(code) && code !== 'ENOENT' && code !== 'ECONNREFUSED') throw error;
        break;
      }
    }
    if (unknownRoles === roles.length) {
      throw new SynapseError('E_RESTORE_TEST_FAILED', {message: `the drill's server on '${backupName}' came up, but none of the roles ${roles.map((role) => `'${role}'`).join(', ')} exists in it`, suggestion: 'Set PGUSER (or DATABASE_URL) to a role of the backed-up cluster.'});
    }
    await sleep(200);
  }
}

/** The new timeline's history file (the highest in pg_wal): where recovery ended, and why. */
async function readRecoveryEnd(dataDirectory: string, backupName: string): Promise<RecoveryEnd> {
  const histories = (await readdir(path.join(dataDirectory, 'pg_wal'))).filter((name) => /^[0-9A-F]{8}\.history$/.test(name)).sort();
  const newest = histories.at(-1);
  const end = newest ? recoveryEndOf(await readFile(path.join(dataDirectory, 'pg_wal', newest), 'utf8')) : undefined;
  if (!end) throw new SynapseError('E_RESTORE_TEST_FAILED', {message: `the drill's server on '${backupName}' promoted, but wrote no timeline history that says where its recovery ended`});
  return end;
}

/** pg_amcheck over every database (installing amcheck where missing), or every table read in full where amcheck is not available. */
async function checkIntegrity(client: pg.Client, server: ScratchServer, superuser: string, databases: readonly string[], binDirectory: string, signal: AbortSignal, backupName: string): Promise<PhysicalDrillResult['integrity']> {
  const available = (await client.query("select 1 from pg_available_extensions where name = 'amcheck'")).rowCount! > 0;
  const amcheck = path.join(binDirectory, 'pg_amcheck');
  if (available && existsSync(amcheck)) {
    const run = await runScratchClient(amcheck, ['--host', server.socketDirectory, '--port', String(server.port), '--username', superuser, '--no-password', '--all', '--install-missing'], signal);
    if (run.exitCode !== 0) {
      const lines = run.output.trim().split('\n');
      throw new SynapseError('E_RESTORE_TEST_FAILED', {
        message: `the drill of '${backupName}' recovered, but pg_amcheck ${run.exitCode === 2 ? 'found corruption' : `failed (exit status ${run.exitCode})`}:\n${lines.slice(0, 20).join('\n')}${lines.length > 20 ? `\n... ${lines.length - 20} more lines` : ''}`,
        suggestion: 'Do not count on this backup: the data it holds is damaged (or could not be checked). Check the production server (pg_amcheck --all), take a new physical backup and drill that one.',
        details: {exitCode: run.exitCode},
      });
    }
    return {tool: 'pg_amcheck', detail: `heap and B-tree indexes of ${databases.length} databases: no corruption`};
  }
  let tables = 0;
  for (const database of databases) {
    const each = await connectScratch(server, superuser, database);
    try {
      const {rows} = await each.query<{name: string}>("select format('%I.%I', n.nspname, c.relname) as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'm') order by 1");
      for (const {name} of rows) {
        try {
          await each.query(`select count(*) from only ${name}`);
        } catch (error) {
          throw new SynapseError('E_RESTORE_TEST_FAILED', {message: `the drill of '${backupName}' recovered, but table ${name} of database '${database}' cannot be read: ${(error as Error).message}`, suggestion: 'Do not count on this backup: its data is damaged. Take a new physical backup and drill that one.'});
        }
        tables++;
      }
    } finally {
      await each.end().catch(() => {});
    }
  }
  return {tool: 'table scan', detail: `amcheck is not available here (${available ? `no ${amcheck}` : 'the amcheck extension is not installed; Debian ships it with the server package'}), so every one of ${tables} tables in ${databases.length} databases was read in full instead (heap pages only, no indexes)`};
}

/**
 * Proves a physical backup restorable by recovering it: restores it (as `backup restore
 * --data-dir` does, with the same checks) into a scratch directory under BACKUP_DRILL_DIR, starts
 * a server of its own on it (socket only, archive_mode off, little memory), waits for recovery to
 * reach the target and promote, then checks the system identifier, where replay ended against the
 * archive (PostgreSQL promotes at the first segment it cannot restore), that every database
 * accepts connections, and the data with pg_amcheck. The server is stopped and the directory
 * removed whatever happens; those of a drill that was killed are removed by the next one.
 */
export async function drillPhysicalBackup(context: RestoreContext, request: PhysicalDrillRequest): Promise<PhysicalDrillResult> {
  const now = context.now ?? (() => new Date());
  const startedAt = now();
  const {events, settings} = context;
  // Cancelled by the caller (Ctrl-C, SIGTERM) or by the drill's own deadline: either way the server
  // is stopped and the directory removed, and a drill that ran out of time fails (see the catch).
  // Capped at what a timer holds (2^31 - 1 ms, about 24.8 days): a longer one would fire at once.
  const deadline = AbortSignal.timeout(Math.min(settings.physical.drillTimeoutMs, 2 ** 31 - 1));
  const signal = AbortSignal.any([context.signal, deadline]);
  const parent = settings.physical.drillDirectory;
  const reclaimed = await reclaimDeadDrills(parent, (message) => events.warning(message));
  const metadata = await readBackupMetadata(context.storage, request.name, 'test-restore');
  const segmentSize = metadata.physical?.walSegmentSize ?? 16 * 1024 * 1024;
  const binDirectory = request.binDirectoryFor(Math.floor(metadata.database.serverVersionNum / 10_000));
  const needed = drillSpaceNeeded(metadata.sizes.plaintextBytes, segmentSize);
  let space;
  try {
    space = await statfs(parent);
  } catch (error) {
    throw new SynapseError('E_CONFIG', {message: `unable to drill '${request.name}': the drill directory '${parent}' cannot be used: ${(error as Error).message}`, suggestion: 'Set BACKUP_DRILL_DIR to an existing directory with room for one restored cluster.'});
  }
  const free = space.bavail * space.bsize;
  if (free < needed) {
    throw new SynapseError('E_SCRATCH_SPACE', {
      message: `unable to drill '${request.name}': it restores the whole cluster (${formatBytes(metadata.sizes.plaintextBytes)} and some WAL: ${formatBytes(needed)}) into '${parent}', which has ${formatBytes(free)} free`,
      details: {neededBytes: needed, freeBytes: free},
    });
  }
  const scratch = path.join(parent, `synapse-drill-${compactTimestamp(startedAt)}_${randomBytes(3).toString('hex')}`);
  // 0711: the server's user reaches its data directory inside, nobody can list what is here.
  await mkdir(scratch, {mode: 0o711});
  const marker: DrillMarker = {pid: process.pid, processStart: processStartTime(process.pid), backupName: request.name, startedAt: startedAt.toISOString()};
  await writeFile(path.join(scratch, MARKER), `${JSON.stringify(marker)}\n`, {mode: 0o600});
  const dataDirectory = path.join(scratch, DATA);
  let server: ScratchServer | undefined;
  let client: pg.Client | undefined;
  try {
    const restored = await restorePhysicalBackup({...context, signal}, {name: request.name, dataDirectory, target: request.target, restoreCommand: request.restoreCommand, owner: request.owner, allowUnauthenticated: request.allowUnauthenticated, walCodec: request.walCodec});
    const restoredAt = now();
    const range = restored.wal;

    events.stage('recover', 'started', {detail: `a server of its own on ${dataDirectory}`});
    server = await startScratchServer({postgres: path.join(binDirectory, 'postgres'), dataDirectory, logFile: path.join(scratch, 'server.log'), port: await freePort(), owner: request.owner});
    const connected = await awaitPromotion(server, request.roles, signal, request.name);
    client = connected.client;
    const recoveredAt = now();
    const end = await readRecoveryEnd(dataDirectory, request.name);
    const replayedBytes = Number(end.position - parseLsn(range.startLsn)!);
    const recoveryMs = recoveredAt.getTime() - restoredAt.getTime();
    const replayBytesPerSecond = recoveryMs > 0 ? Math.round(replayedBytes / (recoveryMs / 1000)) : replayedBytes;
    events.stage('recover', 'finished', {detail: `to ${formatLsn(end.position)} (${end.reason}), ${formatBytes(replayedBytes)} of WAL in ${formatDuration(recoveryMs)}`});

    events.stage('check', 'started');
    const systemIdentifier = (await client.query<{id: string}>('select system_identifier::text as id from pg_control_system()')).rows[0]!.id;
    assertSameCluster(request.name, systemIdentifier, range.systemIdentifier);
    judgeReplay(end, {backupName: request.name, timeline: restored.archiveReach.timeline, path: restored.archiveReach.path, segmentSize: range.walSegmentSize, target: request.target, newestWalFile: restored.archiveReach.newestWalFile, missing: restored.archiveReach.missing});
    const superuser = (await client.query<{name: string}>('select rolname as name from pg_roles where rolsuper order by oid limit 1')).rows[0]?.name ?? connected.role;
    const databases = (await client.query<{name: string}>('select datname as name from pg_database where datallowconn order by 1')).rows.map((row) => row.name);
    for (const database of databases) {
      try {
        const each = await connectScratch(server, superuser, database);
        await each.query('select 1');
        await each.end();
      } catch (error) {
        throw new SynapseError('E_RESTORE_TEST_FAILED', {message: `the drill of '${request.name}' recovered, but database '${database}' does not accept connections: ${(error as Error).message}`});
      }
    }
    const integrity = await checkIntegrity(client, server, superuser, databases, binDirectory, signal, request.name);
    const checkedAt = now();
    events.stage('check', 'finished', {detail: `system identifier ${systemIdentifier}, ${databases.length} databases, ${integrity.tool}`});
    return {
      backupName: metadata.backupName,
      backupType: metadata.backupType,
      method: 'physical',
      target: restored.target,
      systemIdentifier,
      archiveReach: restored.archiveReach,
      recoveryEnd: {lsn: formatLsn(end.position), timeline: end.timeline, reason: end.reason},
      replayedBytes,
      replayBytesPerSecond,
      databases,
      integrity,
      reclaimed,
      steps: {restoreMs: restoredAt.getTime() - startedAt.getTime(), recoveryMs, checkMs: checkedAt.getTime() - recoveredAt.getTime()},
      extractedBytes: restored.extractedBytes,
      durationMs: checkedAt.getTime() - startedAt.getTime(),
    };
  } catch (error) {
    for (const stage of ['recover', 'check'] as const) events.stage(stage, 'skipped', {detail: 'stopped'});
    if (deadline.aborted && !context.signal.aborted) {
      throw new SynapseError('E_RESTORE_TEST_FAILED', {
        message: `the drill of '${request.name}' did not finish within ${describeTimeout(settings.physical.drillTimeoutMs)} (BACKUP_DRILL_TIMEOUT), so it was stopped: its server stopped, its directory removed`,
        suggestion: 'See which step it was in above (restoring, replaying WAL through wal fetch, checking); allow it more time with BACKUP_DRILL_TIMEOUT if that step is only slow. Do not count on this backup until a drill of it passes.',
        cause: error,
      });
    }
    if (signal.aborted && !(isSynapseError(error) && error.code === 'E_CANCELLED')) throw cancelledError('finish the drill', 'The drill restores into its own scratch directory only, which was removed; nothing else was touched.');
    throw error;
  } finally {
    await client?.end().catch(() => {});
    events.stage('drop', 'started');
    await server?.stop();
    await rm(scratch, {recursive: true, force: true});
    events.stage('drop', 'finished', {detail: scratch});
  }
}
