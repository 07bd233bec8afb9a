import {execa} from 'execa';
import {closeSync, openSync, readFileSync, readlinkSync, realpathSync} from 'node:fs';
import {chown, writeFile} from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

import {SynapseError} from '../errors/index.js';
import {minimalChildEnvironment} from '../process/index.js';

/**
 * What a drill's server is started with, whatever the restored postgresql.conf says: it listens on
 * its own socket only (no TCP, a socket directory only its user can enter), lets in local
 * connections only, never archives, streams from or waits for another server, loads no library
 * the production server preloads, writes no file outside its data directory (a production pid
 * file, a log directory) and uses little memory. hot_standby off: no connection before recovery
 * has ended, and none of a standby's checks of max_connections and the like against the primary's.
 */
export function scratchServerSettings(dataDirectory: string, port: number): Array<[string, string]> {
  return [
    ['data_directory', dataDirectory],
    ['hba_file', path.join(dataDirectory, SCRATCH_HBA)],
    ['ident_file', path.join(dataDirectory, SCRATCH_IDENT)],
    ['external_pid_file', ''],
    ['port', String(port)],
    ['listen_addresses', ''],
    ['unix_socket_directories', dataDirectory],
    ['unix_socket_permissions', '0700'],
    ['archive_mode', 'off'],
    ['archive_command', ''],
    ['primary_conninfo', ''],
    ['primary_slot_name', ''],
    ['recovery_end_command', ''],
    ['shared_preload_libraries', ''],
    ['session_preload_libraries', ''],
    ['local_preload_libraries', ''],
    ['hot_standby', 'off'],
    ['ssl', 'off'],
    ['logging_collector', 'off'],
    ['log_destination', 'stderr'],
    ['timezone', 'UTC'],
    ['log_timezone', 'UTC'],
    ['shared_buffers', '32MB'],
    ['max_connections', '20'],
    // No WAL senders: then no commit ever waits for a synchronous standby, whatever synchronous_standby_names says.
    ['max_wal_senders', '0'],
    ['max_replication_slots', '0'],
    ['autovacuum', 'off'],
    ['cluster_name', 'synapse-backup-drill'],
  ];
}

export const SCRATCH_HBA = 'synapse-drill-hba.conf';
export const SCRATCH_IDENT = 'synapse-drill-ident.conf';

export interface ScratchServer {
  readonly pid: number;
  readonly socketDirectory: string;
  readonly port: number;
  /** The server's log (stdout and stderr) so far. */
  log(): string;
  /** Whether the process has exited, with how. */
  exited(): {readonly code: number | undefined; readonly signal: string | undefined} | undefined;
  /** Fast shutdown, then immediate, then SIGKILL: never leaves it running. */
  stop(): Promise<void>;
}

/**
 * Starts `postgres` on a restored data directory as its owner, in the foreground of this process
 * (its output into `logFile`), with the settings above. Connections: trust, over the socket in
 * the data directory, which only the server's user (and root) can enter.
 */
export async function startScratchServer(options: {
  readonly postgres: string;
  readonly dataDirectory: string;
  readonly logFile: string;
  readonly port: number;
  readonly owner?: {readonly uid: number; readonly gid: number};
}): Promise<ScratchServer> {
  const {dataDirectory, port} = options;
  // Longer than sockaddr_un's 107 bytes, the socket cannot be created; say so before the server does.
  if (Buffer.byteLength(path.join(dataDirectory, `.s.PGSQL.${port}`)) > 107) {
    throw new SynapseError('E_CONFIG', {message: `unable to start the drill's server: its socket path under '${dataDirectory}' would be longer than a Unix socket's 107 bytes`, suggestion: 'Point BACKUP_DRILL_DIR at a shorter path, such as /var/tmp.'});
  }
  for (const [file, content] of [
    [SCRATCH_HBA, '# synapse-backup drill: local connections only, over a socket only its user can reach.\nlocal all all trust\n'],
    [SCRATCH_IDENT, ''],
  ] as const) {
    await writeFile(path.join(dataDirectory, file), content, {mode: 0o600, flag: 'wx'});
    if (options.owner) await chown(path.join(dataDirectory, file), options.owner.uid, options.owner.gid);
  }
  // Made 0600 first: what the server logs is nobody else's to read.
  closeSync(openSync(options.logFile, 'a', 0o600));
  const spawn = () =>
    execa(options.postgres, ['-D', dataDirectory, ...scratchServerSettings(dataDirectory, port).flatMap(([name, value]) => ['-c', `${name}=${value}`])], {
      env: minimalChildEnvironment(process.env, {LC_MESSAGES: 'C'}),
      extendEnv: false,
      cwd: dataDirectory,
      stdin: 'ignore',
      stdout: {file: options.logFile, append: true},
      stderr: {file: options.logFile, append: true},
      reject: false,
      ...(options.owner ? {uid: options.owner.uid, gid: options.owner.gid} : {}),
    });
  const child = spawn();
  let exit: {code: number | undefined; signal: string | undefined} | undefined;
  const done = child.then((result) => {
    exit = {code: result.exitCode, signal: result.signal};
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (child.pid === undefined) {
    await done;
    throw new SynapseError('E_TOOL_MISSING', {message: `unable to start the drill's server: '${options.postgres}' could not be run`, suggestion: "Install the PostgreSQL server of the backup's major version (Debian: apt-get install postgresql-<major>), or set PG_BIN_DIR to where its postgres binary is."});
  }
  const pid = child.pid;
  const readLog = (): string => {
    try {
      return readFileSync(options.logFile, 'utf8');
    } catch {
      return '';
    }
  };
  return {
    pid,
    socketDirectory: dataDirectory,
    port,
    log: readLog,
    exited: () => exit,
    async stop() {
      for (const [signal, waitMs] of [
        ['SIGINT', 30_000],
        ['SIGQUIT', 10_000],
        ['SIGKILL', 10_000],
      ] as const) {
        if (exit) return;
        child.kill(signal);
        await Promise.race([done, new Promise((resolve) => setTimeout(resolve, waitMs))]);
      }
    },
  };
}

/** A client on the scratch server, as `user`; rejects while the server does not let anyone in yet. */
export async function connectScratch(server: Pick<ScratchServer, 'socketDirectory' | 'port'>, user: string, database = 'postgres'): Promise<pg.Client> {
  const client = new pg.Client({host: server.socketDirectory, port: server.port, user, database, connectionTimeoutMillis: 5000, application_name: 'synapse-backup drill'});
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  return client;
}

/**
 * The postmaster running on `dataDirectory`, from its postmaster.pid, when that process is alive
 * and its working directory is that data directory (a postmaster's is): never another process
 * that happens to have the PID now.
 */
export function postmasterRunningOn(dataDirectory: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(dataDirectory, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    return realpathSync(readlinkSync(`/proc/${pid}/cwd`)) === realpathSync(dataDirectory) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops a postmaster found by postmasterRunningOn: immediate shutdown, then SIGKILL. */
export async function stopOrphanedPostmaster(pid: number, dataDirectory: string): Promise<void> {
  for (const signal of ['SIGQUIT', 'SIGKILL'] as const) {
    if (postmasterRunningOn(dataDirectory) !== pid) return;
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    for (let waited = 0; waited < 10_000 && postmasterRunningOn(dataDirectory) === pid; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Runs a client tool (pg_amcheck) against the scratch server; its output, its status. */
export async function runScratchClient(program: string, args: readonly string[], signal: AbortSignal): Promise<{exitCode: number | undefined; output: string; missing: boolean}> {
  const result = await execa(program, args, {env: minimalChildEnvironment(process.env, {LC_MESSAGES: 'C'}), extendEnv: false, all: true, reject: false, stdin: 'ignore', cancelSignal: signal});
  return {exitCode: result.exitCode, output: String(result.all ?? ''), missing: (result as {code?: string}).code === 'ENOENT'};
}
