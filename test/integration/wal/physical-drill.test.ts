import {expect} from 'chai';
import {execa} from 'execa';
import {chown, mkdir, readdir, readFile, readlink, rename, symlink, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT, runCli, spawnCli, type CliResult} from '../../helpers/cli.js';
import {PG_BIN, postgresUser, startThrowawayCluster, waitFor, type ThrowawayCluster} from '../../helpers/cluster.js';
import {makeTempDir} from '../../helpers/temp.js';
import {walFile, walFileNames} from '../../helpers/storage.js';

const LAUNCHER = path.join(PROJECT_ROOT, 'bin', 'synapse-backup');
const KEY = 'drill-test-key-0123456789-abcdefghijklmnopqrstuvwxyz';

/** The PIDs of processes whose working directory lies under `directory` (a postmaster's is its data directory), of one program only when `command` is given. */
async function processesUnder(directory: string, command?: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => '');
    if (!cwd.startsWith(`${directory}/`)) continue;
    if (command && (await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '')).trim() !== command) continue;
    found.push(Number(entry));
  }
  return found;
}

/**
 * `backup test-restore` of a physical backup, against a real cluster archiving through `wal push`:
 * the base backup restored into a scratch directory, recovered by a server of its own run as
 * postgres, checked (system identifier, where replay ended against the archive, every database,
 * pg_amcheck), and nothing left behind, after a failure, SIGTERM or kill -9 too.
 */
describe('drills of physical backups: test-restore recovers them on a scratch server', function () {
  this.timeout(300_000);
  let cluster: ThrowawayCluster;
  let home: string;
  let archive: string;
  let drills: string;
  let env: Record<string, string>;
  let base: string;
  /** Segments archived after the base backup ended, oldest first. */
  let afterBackup: string[];
  let betweenBatches: string;

  before(async function () {
    home = (await makeTempDir('synapse-drill-')).path;
    const {uid, gid} = postgresUser();
    await chown(home, uid, gid);
    archive = path.join(home, 'archive');
    await mkdir(archive);
    await chown(archive, uid, gid);
    drills = path.join(home, 'drills');
    await mkdir(drills);
    const keyFile = path.join(home, 'key');
    await writeFile(keyFile, `${KEY}\n`, {mode: 0o600});
    await chown(keyFile, uid, gid);
    const envFile = path.join(home, 'env');
    await writeFile(envFile, `BACKUP_DIR=${archive}\nBACKUP_ENCRYPTION_KEY_FILE=${keyFile}\nBACKUP_ENCRYPTION_ITERATIONS=20000\nBACKUP_COMPRESSION=zstd\n`);
    cluster = await startThrowawayCluster({settings: ['archive_mode = on', `archive_command = 'set -a && . ${envFile} && exec ${LAUNCHER} wal push %p'`, 'archive_timeout = 0']});
    env = {BACKUP_DIR: archive, BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_ENCRYPTION_ITERATIONS: '20000', BACKUP_COMPRESSION: 'zstd', DATABASE_URL: cluster.url('postgres', 'postgres'), BACKUP_DRILL_DIR: drills};
    await cluster.psql('create table events(id serial primary key, batch text not null)');
    await cluster.psql("create table filler(id int primary key, pad text)");
    await batch('before-backup');
    // Settings the production server's configuration may hold (written, not loaded: only its own files change) that a
    // drill's server must not take: a library this machine lacks, a synchronous standby every commit would wait for (pg_amcheck's CREATE EXTENSION among them).
    await cluster.psql("alter system set shared_preload_libraries = 'synapse_no_such_library'");
    await cluster.psql("alter system set synchronous_standby_names = 'nobody'");
    const taken = await cli(['backup', 'run', '--method', 'physical', '--backup-type', 'daily', '--json']);
    expect(taken.exitCode, taken.stderr).to.equal(0);
    base = taken.json.result.name;
    const stop = JSON.parse(await readFile(path.join(archive, `${base}.meta.json`), 'utf8')).physical.stopWalFile as string;
    // WAL after the backup: batches a second apart, each in segments of its own, and some bulk to make replay take a while.
    await batch('first');
    await switchAndArchive();
    await batch('second');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    betweenBatches = await cluster.psql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await batch('third');
    await switchAndArchive();
    await cluster.psql("insert into filler select g, repeat(md5(g::text), 30) from generate_series(1, 250000) g");
    await switchAndArchive();
    await batch('fourth');
    await switchAndArchive();
    afterBackup = (await archivedSegments()).filter((segment) => segment > stop);
    expect(afterBackup.length).to.be.greaterThan(8);
  });

  after(async function () {
    for (const pid of drills ? await processesUnder(drills) : []) process.kill(pid, 'SIGKILL');
    await cluster?.stop();
    if (home) await execa('rm', ['-rf', home]);
  });

  function cli(args: string[], extra: Record<string, string | undefined> = {}): Promise<CliResult> {
    return runCli(args, {cwd: home, env: {...env, ...extra}, timeoutMs: 240_000});
  }

  async function batch(name: string, rows = 100): Promise<void> {
    await cluster.psql(`insert into events(batch) select '${name}' from generate_series(1, ${rows})`);
  }

  async function switchAndArchive(): Promise<void> {
    const last = await cluster.psql('select pg_walfile_name(pg_current_wal_insert_lsn())');
    await cluster.psql('select pg_switch_wal()');
    await waitFor(async () => (await cluster.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver")) >= last, `${last} to be archived`, 120_000);
  }

  async function archivedSegments(): Promise<string[]> {
    return [...new Set((await walFileNames(archive)).filter((key) => /^[0-9A-F]{24}-/.test(key)).map((key) => key.slice(0, 24)))].sort();
  }

  async function storedKeyOf(segment: string): Promise<string> {
    return walFile(archive, (await walFileNames(archive)).find((key) => key.startsWith(`${segment}-`))!);
  }

  async function expectNothingLeft(): Promise<void> {
    expect(await readdir(drills), 'scratch directories left').to.deep.equal([]);
    expect(await processesUnder(drills), 'processes left').to.deep.equal([]);
  }

  it('recovers a base backup and all the WAL after it, checks it with pg_amcheck, and leaves nothing behind', async function () {
    // A timeout longer than a timer can hold (about 24.8 days) is as good as none, not a millisecond.
    const result = await cli(['backup', 'test-restore', base, '--json'], {BACKUP_DRILL_TIMEOUT: '30d'});
    expect(result.exitCode, result.stderr).to.equal(0);
    const drill = result.json.result;
    expect(drill.method).to.equal('physical');
    expect(drill.systemIdentifier).to.equal(await cluster.psql('select system_identifier from pg_control_system()'));
    expect(drill.recoveryEnd.reason).to.equal('no recovery target specified');
    expect(drill.recoveryEnd.timeline).to.equal(1);
    expect(drill.archiveReach.newestWalFile).to.equal(afterBackup.at(-1));
    expect(drill.integrity.tool).to.equal('pg_amcheck');
    expect(drill.databases).to.include.members(['postgres', 'template1']);
    expect(drill.replayedBytes).to.be.greaterThan(8 * 16 * 1024 * 1024);
    expect(drill.replayBytesPerSecond).to.be.greaterThan(0);
    for (const step of ['restoreMs', 'recoveryMs', 'checkMs']) expect(drill.steps[step]).to.be.a('number');
    await expectNothingLeft();
    // The journal has it, by method: status shows the last drill apart from logical restore tests.
    const status = await cli(['status', '--json']);
    expect(status.json.result.restoreTests.physical.backupName, status.stdout).to.equal(base);
    expect(status.json.result.restoreTests.logical ?? null).to.equal(null);
    const metrics = await cli(['status', '--format', 'prometheus']);
    expect(metrics.stdout).to.match(/synapse_backup_restore_test_success_timestamp_seconds\{method="physical"\} \d+/);
  });

  it('--latest --method physical drills the newest physical backup to a time between two batches, and checks that recovery stopped there', async function () {
    const result = await cli(['backup', 'test-restore', '--latest', '--method', 'physical', '--target-time', betweenBatches, '--json']);
    expect(result.exitCode, result.stderr).to.equal(0);
    const drill = result.json.result;
    expect(drill.backupName).to.equal(base);
    const stopped = /^before (\S+ \S+)\+00$/.exec(drill.recoveryEnd.reason);
    expect(stopped, drill.recoveryEnd.reason).to.not.equal(null);
    expect(Date.parse(`${stopped![1]!.replace(' ', 'T')}Z`)).to.be.at.least(Date.parse(`${betweenBatches.replace(' ', 'T').replace('+00', 'Z')}`));
    await expectNothingLeft();
  });

  it('fails naming a damaged segment in the middle of the WAL, although PostgreSQL promotes there', async function () {
    const damaged = afterBackup[Math.floor(afterBackup.length / 2)]!;
    const file = await storedKeyOf(damaged);
    const original = await readFile(file);
    const changed = Buffer.from(original);
    changed[Math.floor(changed.length / 2)] ^= 0xff;
    await writeFile(file, changed);
    try {
      const result = await cli(['backup', 'test-restore', base]);
      expect(result.exitCode, result.stderr).to.equal(6);
      expect(result.stderr).to.include(`${damaged} was not replayed`);
      await expectNothingLeft();
      // The failed drill is what status reports for physical backups.
      const status = await cli(['status', '--json']);
      expect(status.json.result.problems.map((problem: {id: string}) => problem.id)).to.include('restore_test_failed:physical');
    } finally {
      await writeFile(file, original);
    }
  });

  it('fails naming a segment missing from the archive', async function () {
    const missing = afterBackup[2]!;
    const file = await storedKeyOf(missing);
    await rename(file, `${file}.away`);
    try {
      const result = await cli(['backup', 'test-restore', base]);
      expect(result.exitCode, result.stderr).to.equal(6);
      expect(result.stderr).to.include(`${missing} was not replayed, it is missing from the archive`);
      await expectNothingLeft();
    } finally {
      await rename(`${file}.away`, file);
    }
  });

  it('stops its server and removes its directory on SIGTERM during replay', async function () {
    const child = spawnCli(['backup', 'test-restore', base], {cwd: home, env});
    await waitFor(async () => (await processesUnder(drills, 'postgres')).length > 0, 'the drill server to start', 120_000);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode, String(result.stderr)).to.equal(130);
    await expectNothingLeft();
  });

  it('fails when it runs out of BACKUP_DRILL_TIMEOUT, stopping its server and removing its directory', async function () {
    // Restoring and replaying this backup takes several seconds: two is not enough.
    const result = await cli(['backup', 'test-restore', base], {BACKUP_DRILL_TIMEOUT: '2s'});
    expect(result.exitCode, result.stderr).to.equal(6);
    expect(result.stderr).to.include(`the drill of '${base}' did not finish within 2 s (BACKUP_DRILL_TIMEOUT)`);
    await expectNothingLeft();
    // Recorded as a failed drill: status reports it for physical backups.
    const status = await cli(['status', '--json']);
    expect(status.json.result.problems.map((problem: {id: string}) => problem.id)).to.include('restore_test_failed:physical');
  });

  it('after a kill -9 during replay, the next cleanup stops the orphaned server and removes its directory', async function () {
    const child = spawnCli(['backup', 'test-restore', base], {cwd: home, env});
    await waitFor(async () => (await processesUnder(drills, 'postgres')).length > 0, 'the drill server to start', 120_000);
    // A running drill's directory is not a leftover: a cleanup meanwhile leaves it alone.
    const meanwhile = await cli(['backup', 'cleanup']);
    expect(meanwhile.exitCode, meanwhile.stderr).to.equal(0);
    expect(meanwhile.stderr).to.not.include('left by a drill');
    expect(await readdir(drills)).to.have.length(1);
    // A dead drill's directory whose postmaster.pid names a process that is not its server: that process is never signalled.
    const stranger = execa('sleep', ['120'], {reject: false});
    const planted = path.join(drills, 'synapse-drill-20200101_000000_abcdef');
    await mkdir(path.join(planted, 'data'), {recursive: true});
    await writeFile(path.join(planted, 'drill.json'), JSON.stringify({pid: 999_999, processStart: 'gone', backupName: base, startedAt: '2020-01-01T00:00:00.000Z'}));
    await writeFile(path.join(planted, 'data', 'postmaster.pid'), `${stranger.pid}\n${planted}/data\n`);
    child.kill('SIGKILL');
    await child;
    const leftover = (await readdir(drills)).find((entry) => entry !== path.basename(planted))!;
    expect(leftover).to.match(/^synapse-drill-/);
    expect((await processesUnder(drills, 'postgres')).length, 'the orphaned server runs on').to.be.greaterThan(0);
    const cleanup = await cli(['backup', 'cleanup']);
    expect(cleanup.exitCode, cleanup.stderr).to.equal(0);
    expect(cleanup.stderr).to.include(`removed '${path.join(drills, leftover)}', left by a drill of ${base}`).and.include('its server, PID');
    expect(cleanup.stderr).to.include(`removed '${planted}'`);
    expect(() => process.kill(stranger.pid!, 0), 'the stranger process was not signalled').to.not.throw();
    stranger.kill('SIGKILL');
    await stranger;
    await expectNothingLeft();
  });

  it('reads every table instead where pg_amcheck is not there, and says so', async function () {
    const bin = path.join(home, 'server-without-amcheck');
    await mkdir(bin);
    await symlink(path.join(PG_BIN, 'postgres'), path.join(bin, 'postgres'));
    const result = await cli(['backup', 'test-restore', base, '--json'], {PG_BIN_DIR: bin});
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.json.result.integrity.tool).to.equal('table scan');
    expect(result.json.result.integrity.detail).to.include(`no ${path.join(bin, 'pg_amcheck')}`).and.match(/every one of \d+ tables/);
    await expectNothingLeft();
  });

  it('refuses where the drill directory has no room for the restored cluster, before writing anything', async function () {
    const small = path.join(home, 'small');
    await mkdir(small);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      const result = await cli(['backup', 'test-restore', base], {BACKUP_DRILL_DIR: small});
      expect(result.exitCode, result.stderr).to.equal(2);
      expect(result.stderr).to.include('E_SCRATCH_SPACE').and.include(`into '${small}', which has`);
      expect(await readdir(small)).to.deep.equal([]);
    } finally {
      await execa('umount', [small]);
    }
  });

  it('refuses a key from the environment, which the drill server\'s wal fetch could not get, and root as the server\'s user', async function () {
    const fromEnvironment = await cli(['backup', 'test-restore', base], {BACKUP_ENCRYPTION_KEY_FILE: undefined, BACKUP_ENCRYPTION_KEY: KEY});
    expect(fromEnvironment.exitCode, fromEnvironment.stderr).to.equal(2);
    expect(fromEnvironment.stderr).to.include('BACKUP_ENCRYPTION_KEY (the key came from the environment').and.not.include(KEY);
    const asRoot = await cli(['backup', 'test-restore', base, '--owner', 'root']);
    expect(asRoot.exitCode, asRoot.stderr).to.equal(2);
    expect(asRoot.stderr).to.include('PostgreSQL refuses to run as root');
    const logical = await cli(['backup', 'test-restore', base.replace('.tar.zst.enc', '.sql.gz.enc'), '--target-time', betweenBatches]);
    expect(logical.exitCode, logical.stderr).to.equal(2);
    expect(logical.stderr).to.include('are for physical backups');
    await expectNothingLeft();
  });

  it('fails when pg_amcheck finds a corrupted table page in the base backup', async function () {
    await cluster.psql("create table damaged as select g as id, md5(g::text) as value from generate_series(1, 2000) g");
    const file = path.join(cluster.data, await cluster.psql("select pg_relation_filepath('damaged')"));
    await cluster.psql('checkpoint');
    await cluster.psql('alter system reset shared_preload_libraries');
    await cluster.psql('alter system reset synchronous_standby_names');
    const pgCtl = (args: string[]) => execa('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_ctl'), '-D', cluster.data, ...args]);
    await pgCtl(['-m', 'fast', '-w', 'stop']);
    // Line pointers of the first page overwritten: the page header stays valid, its tuples do not.
    const content = await readFile(file);
    content.fill(0xee, 24, 24 + 4 * 40);
    await writeFile(file, content);
    await pgCtl(['-l', path.join(cluster.directory, 'log'), '-w', 'start', '-o', `-c listen_addresses=127.0.0.1 -c port=${cluster.port} -c unix_socket_directories=${cluster.directory}`]);
    const taken = await cli(['backup', 'run', '--method', 'physical', '--json']);
    expect(taken.exitCode, taken.stderr).to.equal(0);
    const result = await cli(['backup', 'test-restore', taken.json.result.name]);
    expect(result.exitCode, result.stderr).to.equal(6);
    expect(result.stderr).to.include('pg_amcheck found corruption').and.include('damaged');
    await expectNothingLeft();
  });
});
