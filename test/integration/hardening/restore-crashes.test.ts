import {expect} from 'chai';
import pg from 'pg';

import {spawnCli, stderrReaches} from '../../helpers/cli.js';
import {databaseNames, databaseUrl, seedSampleData, snapshotDatabase, sql} from '../../helpers/database.js';
import {scratchDatabaseName} from '../../../src/core/postgres/index.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A session in the maintenance database holding a lock on the target database object, as an unrelated admin might. */
async function holdDatabaseLock(database: string): Promise<pg.Client> {
  const client = new pg.Client({connectionString: databaseUrl('postgres')});
  await client.connect();
  await client.query('begin');
  await client.query(`comment on database "${database}" is 'held by a test'`);
  return client;
}

describe('restore under crashes and concurrency', function () {
  let workspace: Workspace;
  let changed: Record<string, string[]>;
  let name: string;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 100);
    name = await workspace.backup();
    await sql(workspace.database, 'create table after_backup (id int)');
    changed = await snapshotDatabase(workspace.database);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  async function expectOpenAndAsItWas(): Promise<void> {
    const {rows} = await sql('postgres', `select datallowconn from pg_database where datname = '${workspace.database}'`);
    expect(rows[0].datallowconn, 'the target accepts connections').to.equal(true);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(changed);
    expect((await databaseNames(workspace.database)).filter((db) => db.includes('pre_restore'))).to.deep.equal([]);
  }

  it('leaves the target as it was and open when killed (SIGKILL) inside the swap', async function () {
    const blocker = await holdDatabaseLock(workspace.database);
    const child = spawnCli(['backup', 'restore', name, '--yes'], {cwd: workspace.cwd, env: {...workspace.env, SYNAPSE_BACKUP_LOCK_TIMEOUT_MS: '60000'}});
    try {
      // The swap's rename is waiting for the lock: the restore is inside its transaction.
      await waitFor(
        async () => {
          const {rows} = await sql('postgres', "select pid from pg_stat_activity where application_name = 'synapse-backup' and wait_event_type = 'Lock' and query ilike 'alter database%rename%'");
          return rows[0]?.pid as number | undefined;
        },
        30_000,
        'the swap to wait for the lock',
      );
      child.kill('SIGKILL');
      await child;
    } finally {
      await blocker.query('rollback');
      await blocker.end();
    }
    // The server abandons the dead client's transaction as soon as it is no longer blocked.
    await waitFor(async () => ((await sql('postgres', "select count(*)::int as n from pg_stat_activity where application_name = 'synapse-backup'")).rows[0].n === 0 ? true : undefined), 15_000, 'the dead session to end');
    await expectOpenAndAsItWas();

    // The next restore drops the scratch database the killed one left, says so, and works.
    expect((await databaseNames(workspace.database)).filter((db) => db.includes('_restoring_'))).to.have.length(1);
    const next = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(next.exitCode, next.stdout).to.equal(0);
    expect(next.json.result.reclaimedDatabases).to.have.length(1);
    expect(next.json.warnings.join('\n')).to.match(/dropped database '.*_restoring_.*', left by an earlier restore/);
    expect((await databaseNames(workspace.database)).filter((db) => db.includes('_restoring_'))).to.deep.equal([]);
  });

  it('list reports, and cleanup drops, what restores that died left; list reports the previous databases kept', async function () {
    const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    const previous = restored.json.result.previousDatabase as string;
    // What a restore whose connection died (a server restart mid-load) leaves behind.
    const dead = scratchDatabaseName(workspace.database, new Date(Date.now() - 3_600_000));
    await sql('postgres', `create database "${dead}"`);

    const listed = await workspace.run(['backup', 'list']);
    expect(listed.stdout).to.include(`database '${dead}': left by a restore that did not finish (dry run: not dropped). Drop it: DROP DATABASE "${dead}" WITH (FORCE);`);
    expect(listed.stdout).to.include(`${previous}   DROP DATABASE "${previous}";`);
    const listedJson = await workspace.run(['backup', 'list', '--json']);
    expect(listedJson.json.result.restoreLeftovers.previous).to.deep.equal([{database: previous, drop: `DROP DATABASE "${previous}";`}]);

    const dryRun = await workspace.run(['backup', 'cleanup', '--dry-run', '--json']);
    expect(dryRun.json.result.databases.abandoned.map((entry: {database: string}) => entry.database)).to.deep.equal([dead]);
    expect(await databaseNames(dead)).to.deep.equal([dead]);
    const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
    expect(cleanup.exitCode, cleanup.stdout).to.equal(0);
    expect(cleanup.json.result.databases.reclaimed).to.deep.equal([dead]);
    expect(await databaseNames(dead)).to.deep.equal([]);
    // The previous database is the user's to drop, never ours.
    expect(await databaseNames(previous)).to.deep.equal([previous]);
  });

  it('cleanup leaves the scratch database of a restore that is running', async function () {
    const running = spawnCli(['backup', 'restore', name], {cwd: workspace.cwd, env: workspace.env});
    await stderrReaches(running, 'Starting in');
    const dead = scratchDatabaseName(workspace.database, new Date());
    await sql('postgres', `create database "${dead}"`);
    const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
    expect(cleanup.json.result.databases).to.include({restoreRunning: true});
    expect(await databaseNames(dead)).to.deep.equal([dead]);
    running.kill('SIGINT');
    await running;
  });

  it('gives up cleanly when another session holds a lock on the target past lock_timeout', async function () {
    const blocker = await holdDatabaseLock(workspace.database);
    try {
      const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {SYNAPSE_BACKUP_LOCK_TIMEOUT_MS: '500'});
      expect(result.exitCode).to.equal(6);
      expect(result.json.error.message).to.include('another session holds a lock on database');
      expect(result.json.error.suggestion).to.include('pg_locks');
    } finally {
      await blocker.query('rollback');
      await blocker.end();
    }
    await expectOpenAndAsItWas();
    expect(await databaseNames(workspace.database)).to.deep.equal([workspace.database]);
  });

  it('runs one restore per target: a second one exits 11 at once and leaves the first alone', async function () {
    const first = spawnCli(['backup', 'restore', name], {cwd: workspace.cwd, env: workspace.env});
    await stderrReaches(first, 'Starting in');
    const started = Date.now();
    const second = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(second.exitCode).to.equal(11);
    expect(second.json.error.code).to.equal('E_LOCKED');
    expect(second.json.error.message).to.include('another restore of it is running');
    expect(Date.now() - started).to.be.lessThan(4000);
    const outcome = await first;
    expect(outcome.exitCode, outcome.stderr).to.equal(0);
    expect(await snapshotDatabase(workspace.database)).not.to.deep.equal(changed);
    expect((await databaseNames(workspace.database)).filter((db) => db.includes('_restoring_'))).to.deep.equal([]);
  });

  it('gives two restores in the same second distinct names for the previous database', async function () {
    const now = Date.now();
    // Start both at the top of a second so that they share it.
    await new Promise((resolve) => setTimeout(resolve, 1000 - (now % 1000) + 10));
    const first = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    const second = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(first.exitCode, first.stdout).to.equal(0);
    expect(second.exitCode, second.stdout).to.equal(0);
    expect(first.json.result.previousDatabase).not.to.equal(second.json.result.previousDatabase);
  });
});
