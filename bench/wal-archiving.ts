/**
 * WAL archiving throughput: how fast the server's own archiver drains a backlog of WAL written by
 * pgbench (an initial load, then TPC-B transactions), through `synapse-backup wal push` and
 * through pgBackRest's asynchronous archive-push, interleaved in the same run, both with zstd
 * level 3 and AES-256-CBC. A backlog is written with archiving stopped (archive_command 'false'),
 * then the tool's archive_command is set and the time is taken until no file waits (.ready).
 */
import {execFileSync} from 'node:child_process';
import {chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, writeFileSync} from 'node:fs';
import path from 'node:path';

import {PG_BIN, startThrowawayCluster, type ThrowawayCluster} from '../test/helpers/cluster.js';
import {median} from './report.js';

export interface WalArchivingSample {
  readonly tool: string;
  readonly files: number;
  readonly bytes: number;
  readonly seconds: number;
  /** CPU seconds the whole machine spent (user + system, every process) while the backlog drained. */
  readonly cpuSeconds: number;
}

export interface WalArchivingResult {
  readonly samples: readonly WalArchivingSample[];
  readonly medians: Readonly<Record<string, number>>;
  readonly targets: ReadonlyArray<{readonly target: string; readonly met: boolean; readonly detail: string}>;
}

const TARGET_MB_PER_SECOND = 150;
const STANZA = 'bench';

function postgresIds(): {uid: number; gid: number} {
  return {uid: Number(execFileSync('id', ['-u', 'postgres'], {encoding: 'utf8'})), gid: Number(execFileSync('id', ['-g', 'postgres'], {encoding: 'utf8'}))};
}

function asPostgres(command: string, args: string[]): string {
  return execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], {encoding: 'utf8'});
}

/** The machine's busy CPU time so far (every CPU, user + nice + system + irq + softirq), from /proc/stat. */
function machineCpuSeconds(): number {
  const [total] = readFileSync('/proc/stat', 'latin1').split('\n');
  const [user, nice, system, , , irq, softirq] = total!.trim().split(/\s+/).slice(1).map(Number);
  // USER_HZ is 100 on every architecture Linux runs Node on.
  return (user! + nice! + system! + irq! + softirq!) / 100;
}

async function waitingFiles(cluster: ThrowawayCluster): Promise<number> {
  return readdirSync(path.join(cluster.data, 'pg_wal', 'archive_status')).filter((name) => name.endsWith('.ready')).length;
}

async function setArchiveCommand(cluster: ThrowawayCluster, command: string): Promise<void> {
  await cluster.psql(`ALTER SYSTEM SET archive_command = '${command.replaceAll("'", "''")}'`);
  await cluster.psql('SELECT pg_reload_conf()');
}

/** A backlog of WAL from pgbench with archiving stopped; returns the number of files waiting. */
async function writeBacklog(cluster: ThrowawayCluster, scale: number, seconds: number): Promise<number> {
  await setArchiveCommand(cluster, 'false');
  const connection = ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', 'postgres'];
  execFileSync(path.join(PG_BIN, 'pgbench'), ['-i', '-q', '-s', String(scale), ...connection], {stdio: 'ignore'});
  execFileSync(path.join(PG_BIN, 'pgbench'), ['-T', String(seconds), '-c', '4', '-j', '2', ...connection], {stdio: 'ignore'});
  await cluster.psql('SELECT pg_switch_wal()');
  return waitingFiles(cluster);
}

export async function measureWalArchiving(options: {runs: number; scale: number; pgbenchSeconds: number; work: string; log: (line: string) => void}): Promise<WalArchivingResult> {
  const {log} = options;
  const {uid, gid} = postgresIds();
  // The server's user reads its configuration and key from here, as archive_command runs as it.
  chmodSync(options.work, 0o755);
  const home = path.join(options.work, 'wal');
  mkdirSync(home, {recursive: true});
  chownSync(home, uid, gid);
  const ownedDirectory = (name: string): string => {
    const directory = path.join(home, name);
    mkdirSync(directory, {recursive: true, mode: 0o700});
    chownSync(directory, uid, gid);
    return directory;
  };
  const passphrase = execFileSync('openssl', ['rand', '-base64', '48'], {encoding: 'utf8'}).trim();
  const keyFile = path.join(home, 'key');
  writeFileSync(keyFile, `${passphrase}\n`, {mode: 0o600});
  chownSync(keyFile, uid, gid);
  const envFile = path.join(home, 'env');
  writeFileSync(envFile, `BACKUP_DIR=${ownedDirectory('synapse-archive')}\nBACKUP_ENCRYPTION_KEY_FILE=${keyFile}\nBACKUP_COMPRESSION=zstd\nBACKUP_COMPRESSION_LEVEL=3\n`);

  const cluster = await startThrowawayCluster({settings: ['archive_mode = on', "archive_command = 'false'", 'max_wal_size = 16GB', 'checkpoint_timeout = 1h', 'wal_keep_size = 0']});
  const tools: Array<{tool: string; command: string}> = [
    {tool: 'synapse-backup wal push', command: `set -a && . ${envFile} && exec ${path.resolve('bin/synapse-backup')} wal push %p`},
  ];
  let pgbackrest = true;
  try {
    execFileSync('pgbackrest', ['version'], {stdio: 'ignore'});
  } catch {
    pgbackrest = false;
    log('skipping pgBackRest: not installed (Debian: apt-get install pgbackrest)');
  }
  if (pgbackrest) {
    const config = path.join(home, 'pgbackrest.conf');
    writeFileSync(
      config,
      [
        '[global]',
        `repo1-path=${ownedDirectory('pgbackrest-repo')}`,
        'repo1-cipher-type=aes-256-cbc',
        `repo1-cipher-pass=${passphrase}`,
        'compress-type=zst',
        'compress-level=3',
        'archive-async=y',
        `spool-path=${ownedDirectory('pgbackrest-spool')}`,
        `lock-path=${ownedDirectory('pgbackrest-lock')}`,
        `log-path=${ownedDirectory('pgbackrest-log')}`,
        'process-max=2',
        'log-level-console=warn',
        'log-level-file=off',
        `[${STANZA}]`,
        `pg1-path=${cluster.data}`,
        `pg1-port=${cluster.port}`,
        `pg1-socket-path=${cluster.directory}`,
        '',
      ].join('\n'),
    );
    chownSync(config, uid, gid);
    asPostgres('pgbackrest', [`--config=${config}`, `--stanza=${STANZA}`, 'stanza-create']);
    tools.push({tool: 'pgbackrest archive-push (async)', command: `pgbackrest --config=${config} --stanza=${STANZA} archive-push %p`});
  }

  const samples: WalArchivingSample[] = [];
  try {
    log(`WAL archiving, ${options.runs} interleaved runs (a pgbench backlog: -i -s ${options.scale}, then ${options.pgbenchSeconds} s of transactions):`);
    for (let run = 1; run <= options.runs; run++) {
      const order = run % 2 === 1 ? tools : [...tools].reverse();
      for (const {tool, command} of order) {
        const files = await writeBacklog(cluster, options.scale, options.pgbenchSeconds);
        const started = process.hrtime.bigint();
        const cpuBefore = machineCpuSeconds();
        await setArchiveCommand(cluster, command);
        while ((await waitingFiles(cluster)) > 0) await new Promise((resolve) => setTimeout(resolve, 20));
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const cpuSeconds = machineCpuSeconds() - cpuBefore;
        const failed = await cluster.psql('SELECT last_failed_wal IS NOT NULL AND last_failed_time > last_archived_time FROM pg_stat_archiver');
        if (failed === 't') throw new Error(`${tool}: the archiver reports a failure after catching up; see ${cluster.directory}/log`);
        const sample = {tool, files, bytes: files * 16 * 1024 * 1024, seconds, cpuSeconds};
        samples.push(sample);
        log(`  run ${run}  ${tool.padEnd(34)} ${files} files in ${seconds.toFixed(2)} s: ${(sample.bytes / 1e6 / seconds).toFixed(0)} MB/s, ${((cpuSeconds * 1e9) / sample.bytes).toFixed(2)} CPU-s per GB`);
      }
    }
  } finally {
    await cluster.stop();
  }
  const medians = Object.fromEntries(tools.map(({tool}) => [tool, median(samples.filter((sample) => sample.tool === tool).map((sample) => sample.bytes / 1e6 / sample.seconds))]));
  const ours = medians['synapse-backup wal push']!;
  const targets = [{target: `sustained archiving of at least ${TARGET_MB_PER_SECOND} MB/s of WAL`, met: ours >= TARGET_MB_PER_SECOND, detail: `${ours.toFixed(0)} MB/s`}];
  const theirs = medians['pgbackrest archive-push (async)'];
  if (theirs !== undefined) targets.push({target: "no slower than pgBackRest's asynchronous archive-push", met: ours >= theirs, detail: `${ours.toFixed(0)} MB/s against ${theirs.toFixed(0)} MB/s`});
  return {samples, medians, targets};
}
