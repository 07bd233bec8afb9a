import {expect} from 'chai';
import {spawnSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {mkdir, readFile, readdir, rm, writeFile} from 'node:fs/promises';
import {hostname} from 'node:os';
import path from 'node:path';

import {spawnCli} from '../helpers/cli.js';
import {seedSampleData, sql} from '../helpers/database.js';
import {fakeBinDir, versionAware} from '../helpers/fake-tools.js';
import {mountTmpfs, unmount} from '../helpers/mounts.js';
import {createWorkspace, type Workspace} from '../helpers/workspace.js';

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

describe('backup run failures', function () {
  let workspace: Workspace;
  let earlier: string;
  let earlierHash: string;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 100);
    earlier = await workspace.backup();
    earlierHash = await sha256(path.join(workspace.backupDir, earlier));
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  /** Only the earlier backup is there, byte for byte, and it still restores as good. */
  async function expectOnlyEarlierBackup(): Promise<void> {
    expect(await workspace.backupFiles()).to.deep.equal([earlier, `${earlier}.meta.json`]);
    expect(await sha256(path.join(workspace.backupDir, earlier))).to.equal(earlierHash);
    const listed = await workspace.run(['backup', 'list', '--json']);
    expect(listed.json.result.backups.map((backup: {name: string; health: string}) => `${backup.name}:${backup.health}`)).to.deep.equal([`${earlier}:good`]);
  }

  it('leaves no backup when pg_dump fails midway, showing its stderr without the password', async function () {
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {
      pg_dump: versionAware('pg_dump', 'pg_dump "$@" | head -c 3000\necho "pg_dump: error: query failed: server closed the connection unexpectedly (password=hunter2)" >&2\nexit 1'),
    });
    const result = await workspace.run(['backup', 'run', '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode).to.equal(5);
    expect(result.json.error.code).to.equal('E_DUMP_FAILED');
    expect(result.json.error.details.stage).to.equal('dump');
    expect(result.json.error.message).to.include('pg_dump exited with status 1');
    expect(result.json.error.message).to.include('server closed the connection unexpectedly');
    expect(result.stdout + result.stderr).not.to.include('hunter2');
    await expectOnlyEarlierBackup();
  });

  it('leaves no backup when pg_dump is killed by a signal', async function () {
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'pg_dump "$@" | head -c 3000\nkill -KILL $$')});
    const result = await workspace.run(['backup', 'run', '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode).to.equal(5);
    expect(result.json.error.message).to.include('pg_dump killed by SIGKILL');
    await expectOnlyEarlierBackup();
  });

  it('survives its own crash: the leftover is not a backup, the next run takes over the lock, cleanup removes it', async function () {
    const pidFile = path.join(workspace.cwd, 'dump.pid');
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {
      pg_dump: versionAware('pg_dump', `pg_dump "$@"\necho $$ > ${pidFile}\nexec sleep 60`),
    });
    const child = spawnCli(['backup', 'run'], {cwd: workspace.cwd, env: {...workspace.env, PG_BIN_DIR: binDir}});
    for (let wait = 0; wait < 200; wait++) {
      const staging = (await readdir(workspace.backupDir)).filter((file) => file.endsWith('.partial'));
      if (staging.length > 0 && (await readFile(pidFile, 'utf8').catch(() => ''))) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill('SIGKILL');
    await child;
    process.kill(Number(await readFile(pidFile, 'utf8')), 'SIGKILL');

    const files = await workspace.backupFiles();
    expect(files).to.include('synapse-backup.lock');
    expect(files.filter((file) => file.endsWith('.partial'))).to.have.length(1);
    const listed = await workspace.run(['backup', 'list', '--json']);
    expect(listed.json.result.backups.map((backup: {name: string}) => backup.name)).to.deep.equal([earlier]);

    const next = await workspace.backup();
    expect(next).not.to.equal(earlier);
    const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
    expect(cleanup.exitCode, cleanup.stderr).to.equal(0);
    expect(cleanup.json.result.leftovers).to.have.length(1);
    expect(await workspace.backupFiles()).to.deep.equal([earlier, `${earlier}.meta.json`, next, `${next}.meta.json`].sort());
  });

  it('stops on SIGINT with exit 130, removing its temporary file and its lock', async function () {
    const pidFile = path.join(workspace.cwd, 'dump.pid');
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', `echo $$ > ${pidFile}\npg_dump "$@"\nexec sleep 60`)});
    const child = spawnCli(['backup', 'run'], {cwd: workspace.cwd, env: {...workspace.env, PG_BIN_DIR: binDir}});
    for (let wait = 0; wait < 200; wait++) {
      if ((await workspace.backupFiles()).some((file) => file.endsWith('.partial')) && (await readFile(pidFile, 'utf8').catch(() => ''))) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode, result.stderr).to.equal(130);
    expect(result.stderr).to.include('E_CANCELLED');
    await expectOnlyEarlierBackup();
    let dumpAlive = true;
    try {
      process.kill(Number(await readFile(pidFile, 'utf8')), 0);
    } catch {
      dumpAlive = false;
    }
    expect(dumpAlive, 'pg_dump was stopped').to.equal(false);
  });

  it('exits at once with status 11 while another run holds the lock', async function () {
    const lock = {pid: process.pid, hostname: hostname(), operation: 'backup run', acquiredAt: new Date().toISOString()};
    await writeFile(path.join(workspace.backupDir, 'synapse-backup.lock'), JSON.stringify(lock));
    const started = Date.now();
    const result = await workspace.run(['backup', 'run', '--json']);
    expect(result.exitCode).to.equal(11);
    expect(result.json.error.code).to.equal('E_LOCKED');
    expect(result.json.error.message).to.include(`pid ${process.pid}`);
    expect(Date.now() - started).to.be.lessThan(10_000);
    expect(JSON.parse(await readFile(path.join(workspace.backupDir, 'synapse-backup.lock'), 'utf8'))).to.deep.equal(lock);
    expect((await workspace.run(['backup', 'cleanup', '--json'])).exitCode).to.equal(11);
  });

  it('stops the pg_dump it started alongside preflight when preflight fails', async function () {
    // pg_dump starts while preflight checks the server and the lock; a failed check must not leave it running.
    const marker = `${Date.now() % 100_000}.${process.pid % 1000}`;
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', `exec sleep ${marker}`)});
    const lock = {pid: process.pid, hostname: hostname(), operation: 'backup run', acquiredAt: new Date().toISOString()};
    await writeFile(path.join(workspace.backupDir, 'synapse-backup.lock'), JSON.stringify(lock));
    const result = await workspace.run(['backup', 'run', '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode).to.equal(11);
    expect(result.json.error.code).to.equal('E_LOCKED');
    const leftover = spawnSync('pgrep', ['-f', `sleep ${marker}`], {encoding: 'utf8'});
    expect(leftover.stdout.trim(), 'pg_dump left running').to.equal('');
    expect(JSON.parse(await readFile(path.join(workspace.backupDir, 'synapse-backup.lock'), 'utf8'))).to.deep.equal(lock);
    await rm(path.join(workspace.backupDir, 'synapse-backup.lock'));
    await expectOnlyEarlierBackup();
  });

  it('excludes a second run started while the first is dumping', async function () {
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'sleep 2\nexec pg_dump "$@"')});
    const first = workspace.run(['backup', 'run', '--json'], {PG_BIN_DIR: binDir});
    for (let wait = 0; wait < 100 && !(await workspace.backupFiles()).includes('synapse-backup.lock'); wait++) await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await workspace.run(['backup', 'run', '--json']);
    expect(second.exitCode).to.equal(11);
    const firstResult = await first;
    expect(firstResult.exitCode, firstResult.stderr).to.equal(0);
    expect(await workspace.backupFiles()).not.to.include('synapse-backup.lock');
  });

  it('fails cleanly on a full disk, leaving earlier backups intact', async function () {
    const mountPoint = path.join(workspace.cwd, 'small');
    await mkdir(mountPoint);
    await mountTmpfs(mountPoint, {sizeBytes: 512 * 1024});
    try {
      const small = {BACKUP_DIR: mountPoint};
      const first = await workspace.backup(small);
      const firstHash = await sha256(path.join(mountPoint, first));
      await sql(workspace.database, "create table filler as select g, md5(g::text) || md5((g * 7)::text) as a, md5(random()::text) as b from generate_series(1, 60000) g");
      const result = await workspace.run(['backup', 'run', '--json'], small);
      expect(result.exitCode).to.equal(7);
      expect(result.json.error.code).to.equal('E_STORAGE_FULL');
      expect(result.json.error.details.stage).to.equal('store');
      expect((await readdir(mountPoint)).filter((file) => !file.startsWith('synapse-backup.journal.')).sort()).to.deep.equal([first, `${first}.meta.json`]);
      expect(await sha256(path.join(mountPoint, first))).to.equal(firstHash);
    } finally {
      await unmount(mountPoint);
    }
  });

  it('reports a backup directory it cannot write to', async function () {
    const mountPoint = path.join(workspace.cwd, 'readonly');
    await mkdir(mountPoint);
    await mountTmpfs(mountPoint, {sizeBytes: 1024 * 1024, readOnly: true});
    try {
      const result = await workspace.run(['backup', 'run', '--json'], {BACKUP_DIR: mountPoint});
      expect(result.exitCode).to.equal(7);
      expect(result.json.error.code).to.equal('E_STORAGE_UNWRITABLE');
      expect(result.json.error.message).to.include(mountPoint);
    } finally {
      await unmount(mountPoint);
    }
  });

  it('says how to install pg_dump when it is missing', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {PG_BIN_DIR: '/nonexistent/bin'});
    expect(result.exitCode).to.equal(4);
    expect(result.json.error.code).to.equal('E_TOOL_MISSING');
    expect(result.json.error.suggestion).to.include('apt-get install postgresql-client');
    await expectOnlyEarlierBackup();
  });

  it('refuses a pg_dump older than the server before starting', async function () {
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'exit 99', '11.22')});
    const result = await workspace.run(['backup', 'run', '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode).to.equal(4);
    expect(result.json.error.code).to.equal('E_TOOL_VERSION');
    expect(result.json.error.message).to.match(/pg_dump 11\.22 is older than the server/);
    await expectOnlyEarlierBackup();
  });

  it('reports an unreachable server without showing the password', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: 'postgresql://postgres:s3cr3t-pw@127.0.0.1:1/nowhere'});
    expect(result.exitCode).to.equal(3);
    expect(result.json.error.code).to.equal('E_DB_UNREACHABLE');
    expect(result.json.error.message).to.include('ECONNREFUSED');
    expect(result.stdout + result.stderr).not.to.include('s3cr3t-pw');
    await expectOnlyEarlierBackup();
  });

  it('reports a database that does not exist', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: `${workspace.databaseUrl}_missing`});
    expect(result.exitCode).to.equal(3);
    expect(result.json.error.message).to.match(/does not exist/);
  });

  it('reports an unknown role as an authentication failure', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: workspace.databaseUrl.replace('postgres@', 'no_such_role@')});
    expect(result.exitCode).to.equal(3);
    expect(result.json.error.code).to.equal('E_DB_AUTH');
    // The quick start on a machine whose user has no role: say what to do.
    expect(result.json.error.message).to.include('the server has no role "no_such_role"');
    expect(result.json.error.suggestion).to.include('DATABASE_URL=postgresql://postgres@').and.include('createuser --superuser no_such_role');
  });
});
