import {expect} from 'chai';
import path from 'node:path';

import {runCli} from '../../helpers/cli.js';
import {startThrowawayCluster, type ThrowawayCluster} from '../../helpers/cluster.js';
import {makeTempDir} from '../../helpers/temp.js';

describe('restore onto a read-only server (throwaway cluster)', function () {
  this.timeout(120_000);
  let cluster: ThrowawayCluster;
  let temp: {path: string; remove: () => Promise<void>};

  before(async function () {
    cluster = await startThrowawayCluster();
    await cluster.psql('create database app');
    await cluster.psql('create table t (id int); insert into t values (1)', 'app');
    // What a standby looks like to a client: every transaction is read-only.
    await cluster.psql('alter system set default_transaction_read_only = on');
    await cluster.psql('select pg_reload_conf()');
    temp = await makeTempDir('synapse-ro-');
  });

  after(async function () {
    await cluster?.stop();
    await temp?.remove();
  });

  it('names the read-only server instead of calling it unreachable, and changes nothing', async function () {
    const env = {DATABASE_URL: cluster.url('postgres', 'app'), BACKUP_DIR: path.join(temp.path, 'backups')};
    const backup = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env});
    expect(backup.exitCode, backup.stdout).to.equal(0);
    const restore = await runCli(['backup', 'restore', backup.json.result.name, '--yes', '--json'], {cwd: temp.path, env});
    expect(restore.exitCode).to.equal(3);
    expect(restore.json.error.code).to.equal('E_DB_READ_ONLY');
    expect(restore.json.error.message).to.include('the server is read-only');
    expect(restore.json.error.suggestion).to.include('primary');
    expect(restore.json.error.suggestion).not.to.include('Check that PostgreSQL is running');
    expect(await cluster.psql("select count(*) from pg_database where datname like 'app_%'")).to.equal('0');
  });
});
