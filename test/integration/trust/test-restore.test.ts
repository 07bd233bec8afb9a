import {expect} from 'chai';
import {access, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';

import {spawnCli} from '../../helpers/cli.js';
import {databaseNames, seedSampleData, snapshotDatabase, sql} from '../../helpers/database.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {rewriteMetadata} from '../../helpers/metadata.js';
import {waitFor} from '../../helpers/services.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

const SCRATCH_PREFIX = 'synapse_restore_test_';

/** psql that takes its time, so that a test can signal the CLI while the load runs. */
const SLOW_PSQL = versionAware('psql', 'exec sleep 60');

describe('backup test-restore', function () {
  let workspace: Workspace;

  /** Starts a test restore of `name`, kills it with SIGKILL while psql loads, and returns the scratch database it left. */
  async function killTestRestoreDuringLoad(name: string): Promise<string> {
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {psql: SLOW_PSQL});
    const killed = spawnCli(['backup', 'test-restore', name], {cwd: workspace.cwd, env: {...workspace.env, PG_BIN_DIR: binDir}});
    await waitFor(async () => (await databaseNames(SCRATCH_PREFIX)).length > 0, 'the scratch database');
    killed.kill('SIGKILL');
    await killed;
    const [leftover] = await databaseNames(SCRATCH_PREFIX);
    // The dead run's session may take a moment to end on the server.
    await waitFor(async () => (await sql('postgres', `select count(*)::int as n from pg_stat_activity where datname = '${leftover}'`)).rows[0].n === 0, 'the killed session to end');
    return leftover!;
  }

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 200);
    await sql(workspace.database, "create schema audit; create table audit.events (id bigint generated always as identity, what text); insert into audit.events (what) select 'e' || g from generate_series(1, 37) g; select nextval('customers_id_seq');");
  });

  afterEach(async function () {
    for (const leftover of await databaseNames(SCRATCH_PREFIX)) await sql('postgres', `drop database if exists "${leftover}" with (force)`);
    await workspace.dispose();
  });

  it('records a fingerprint of every table and sequence at backup time', async function () {
    const name = await workspace.backup();
    const {fingerprint} = await workspace.readMetadata(name);
    expect(fingerprint.takenIn).to.equal('dump-snapshot');
    const rows = Object.fromEntries(fingerprint.tables.map((table: {schema: string; name: string; rows: number}) => [`${table.schema}.${table.name}`, table.rows]));
    expect(rows).to.deep.equal({'audit.events': 37, 'public.customers': 200, 'public.orders': 800});
    const sequences = Object.fromEntries(fingerprint.sequences.map((sequence: {schema: string; name: string; lastValue: string}) => [`${sequence.schema}.${sequence.name}`, sequence.lastValue]));
    expect(sequences).to.deep.equal({'audit.events_id_seq': '37', 'public.customers_id_seq': '201', 'public.orders_id_seq': '800'});
  });

  it('takes no fingerprint with BACKUP_FINGERPRINT=off, and refuses a value that is not on or off', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {BACKUP_FINGERPRINT: 'off'});
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.json.warnings.join('\n')).not.to.include('fingerprint');
    expect(await workspace.readMetadata(result.json.result.name)).not.to.have.property('fingerprint');
    const bad = await workspace.run(['backup', 'run', '--json'], {BACKUP_FINGERPRINT: 'sometimes'});
    expect(bad.exitCode).to.equal(2);
    expect(bad.json.error.message).to.include('BACKUP_FINGERPRINT');
  });

  it('loads the backup into a scratch database, finds the data equal, drops it, and leaves the database alone', async function () {
    const name = await workspace.backup();
    const before = await snapshotDatabase(workspace.database);
    const result = await workspace.run(['backup', 'test-restore', name, '--json']);
    expect(result.exitCode, result.stderr).to.equal(0);
    const {comparison, scratchDatabase} = result.json.result;
    expect(comparison).to.include({status: 'matched', tables: 3, sequences: 3});
    expect(comparison.differences).to.deep.equal([]);
    expect(scratchDatabase).to.match(/^synapse_restore_test_\d{8}_\d{6}_[0-9a-f]{6}$/);
    expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([]);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
    const [entry] = await workspace.journalEntries();
    expect(entry).to.include({operation: 'restore-test', outcome: 'succeeded', backupName: name});
  });

  it('counts in the snapshot pg_dump dumps: rows written while pg_dump starts are in neither', async function () {
    const gate = path.join(workspace.cwd, 'gate');
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {
      pg_dump: versionAware('pg_dump', `touch ${gate}.started\nwhile [ ! -f ${gate}.go ]; do sleep 0.05; done\nexec pg_dump "$@"`),
    });
    const run = spawnCli(['backup', 'run', '--json'], {cwd: workspace.cwd, env: {...workspace.env, PG_BIN_DIR: binDir}});
    await waitFor(() => access(`${gate}.started`).then(() => true, () => false), 'pg_dump to start');
    await sql(workspace.database, "insert into audit.events (what) select 'late' from generate_series(1, 5)");
    await writeFile(`${gate}.go`, '');
    const backup = await run;
    expect(backup.exitCode, backup.stderr).to.equal(0);
    const name = JSON.parse(backup.stdout).result.name as string;
    const {fingerprint} = await workspace.readMetadata(name);
    expect(fingerprint.tables.find((table: {name: string}) => table.name === 'events').rows).to.equal(37);
    const result = await workspace.run(['backup', 'test-restore', name, '--json']);
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.json.result.comparison.status).to.equal('matched');
  });

  it('fails with exit 6 and names each table that differs from the fingerprint, and still drops the scratch database', async function () {
    const name = await workspace.backup();
    await rewriteMetadata(workspace.backupDir, name, (metadata) => {
      metadata.fingerprint.tables.find((table: {name: string}) => table.name === 'orders').rows = 801;
    });
    const result = await workspace.run(['backup', 'test-restore', name, '--json']);
    expect(result.exitCode).to.equal(6);
    expect(result.json.error.code).to.equal('E_RESTORE_TEST_FAILED');
    expect(result.json.error.message).to.include('table public.orders: expected 801 rows, restored 800 rows');
    expect(result.json.error.details.result.comparison.differences).to.deep.equal([{kind: 'table', schema: 'public', name: 'orders', expected: '801 rows', actual: '800 rows'}]);
    expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([]);
    const [entry] = await workspace.journalEntries();
    expect(entry).to.include({operation: 'restore-test', outcome: 'failed'});
  });

  it('restores an older backup without a fingerprint, and says the comparison was skipped', async function () {
    const name = await workspace.backup();
    await rewriteMetadata(workspace.backupDir, name, (metadata) => {
      delete metadata.fingerprint;
    });
    const result = await workspace.run(['backup', 'test-restore', name]);
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.stdout).to.include('Comparison skipped').and.include('no fingerprint');
  });

  it('refuses a damaged backup before creating anything', async function () {
    const name = await workspace.backup();
    await rewriteMetadata(workspace.backupDir, name, (metadata) => {
      metadata.checksums.stored = '0'.repeat(64);
    });
    const result = await workspace.run(['backup', 'test-restore', name, '--json']);
    expect(result.exitCode).to.equal(13);
    expect(result.json.error.message).to.include('failed verification');
    expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([]);
  });

  it('drops the scratch database when stopped by SIGTERM during the load', async function () {
    const name = await workspace.backup();
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {psql: SLOW_PSQL});
    const child = spawnCli(['backup', 'test-restore', name], {cwd: workspace.cwd, env: {...workspace.env, PG_BIN_DIR: binDir}});
    await waitFor(async () => (await databaseNames(SCRATCH_PREFIX)).length > 0, 'the scratch database');
    await sleep(200);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).to.equal(130);
    expect(result.stderr).not.to.include('target');
    expect(result.stderr).to.include('the configured database was not touched');
    expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([]);
  });

  it('says, when the load fails, that the configured database was not touched, never that a target was left as it was', async function () {
    const name = await workspace.backup();
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {psql: versionAware('psql', 'cat > /dev/null; echo "psql:<stdin>:7: ERROR:  out of shared memory" >&2; exit 3')});
    const result = await workspace.run(['backup', 'test-restore', name, '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode, result.stdout).to.equal(6);
    expect(JSON.stringify(result.json.error)).not.to.include('target');
    expect(result.json.error.suggestion).to.include('the configured database was not touched');
    expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([]);
  });

  /** Runs `work` while a test restore of `name` is loading (its psql takes its time), with the name of its live scratch database; then stops it. */
  async function whileTestRestoreLoads(name: string, work: (live: string) => Promise<void>): Promise<void> {
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {psql: SLOW_PSQL});
    const running = spawnCli(['backup', 'test-restore', name], {cwd: workspace.cwd, env: {...workspace.env, PG_BIN_DIR: binDir}});
    try {
      await waitFor(async () => (await databaseNames(SCRATCH_PREFIX)).length > 0, 'the scratch database');
      const [live] = await databaseNames(SCRATCH_PREFIX);
      await work(live!);
    } finally {
      running.kill('SIGTERM');
      await running;
    }
  }

  it("never drops the scratch database of a test restore that is still running", async function () {
    const name = await workspace.backup();
    await whileTestRestoreLoads(name, async (live) => {
      const second = await workspace.run(['backup', 'test-restore', name, '--json']);
      expect(second.exitCode, second.stderr).to.equal(0);
      expect(second.json.result.reclaimedDatabases).to.deep.equal([]);
      expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([live]);
    });
    expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([]);
  });

  it("is never mistaken for dead by another job's cleanup, whatever database that job is configured for", async function () {
    const name = await workspace.backup();
    await whileTestRestoreLoads(name, async (live) => {
      // A cleanup for the database `postgres` works from template1, where the running test restore holds no lock.
      for (const database of ['postgres', 'template1', workspace.database]) {
        const cleanup = await workspace.run(['backup', 'cleanup', '--json'], {DATABASE_URL: `postgresql://postgres@127.0.0.1:5432/${database}`});
        expect(cleanup.exitCode, cleanup.stdout + cleanup.stderr).to.equal(0);
        expect(await databaseNames(SCRATCH_PREFIX), `a cleanup for '${database}'`).to.deep.equal([live]);
      }
    });
  });

  it('leaves cleanup (hourly) to drop the scratch database of a killed test restore, and says so; a dry run only names it', async function () {
    const name = await workspace.backup();
    const leftover = await killTestRestoreDuringLoad(name);
    const dryRun = await workspace.run(['backup', 'cleanup', '--dry-run']);
    expect(dryRun.exitCode, dryRun.stderr).to.equal(0);
    expect(dryRun.stdout).to.include(`database '${leftover}': left by a test restore that did not finish (dry run: not dropped)`);
    expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([leftover]);
    const cleanup = await workspace.run(['backup', 'cleanup']);
    expect(cleanup.exitCode, cleanup.stderr).to.equal(0);
    expect(cleanup.stdout).to.include(`dropped database '${leftover}' (left by a test restore that did not finish)`);
    expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([]);
  });

  it('drops the scratch database a killed test restore left, and only that one', async function () {
    const name = await workspace.backup();
    const leftover = await killTestRestoreDuringLoad(name);
    // A look-alike that no test restore made must survive.
    await sql('postgres', `create database ${SCRATCH_PREFIX}keep_me`);
    try {
      const result = await workspace.run(['backup', 'test-restore', name, '--json']);
      expect(result.exitCode, result.stderr).to.equal(0);
      expect(result.json.result.reclaimedDatabases).to.deep.equal([leftover]);
      expect(result.json.warnings.join('\n')).to.include(leftover!);
      expect(await databaseNames(SCRATCH_PREFIX)).to.deep.equal([`${SCRATCH_PREFIX}keep_me`]);
    } finally {
      await sql('postgres', `drop database if exists ${SCRATCH_PREFIX}keep_me`);
    }
  });
});
