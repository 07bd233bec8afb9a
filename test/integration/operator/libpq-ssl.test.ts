import {expect} from 'chai';
import {execa} from 'execa';
import path from 'node:path';

import {runCli} from '../../helpers/cli.js';
import {startThrowawayCluster, type ThrowawayCluster} from '../../helpers/cluster.js';
import {makeTempDir} from '../../helpers/temp.js';

/**
 * Our own connections read sslmode as libpq does, so they agree with pg_dump and psql: against a
 * server with a self-signed certificate, `require` works and `verify-full` is refused, by both.
 */
describe('sslmode as libpq reads it (throwaway cluster with ssl=on and a self-signed certificate)', function () {
  this.timeout(120_000);
  let cluster: ThrowawayCluster;
  let temp: {path: string; remove: () => Promise<void>};
  let rootCert: string;

  before(async function () {
    cluster = await startThrowawayCluster();
    const data = path.join(cluster.directory, 'data');
    // The certificate names 'localhost'; the tests connect to 127.0.0.1, so verify-full must refuse it.
    await execa('openssl', ['req', '-new', '-x509', '-days', '2', '-nodes', '-subj', '/CN=localhost', '-keyout', path.join(data, 'server.key'), '-out', path.join(data, 'server.crt')]);
    await execa('chown', ['postgres', path.join(data, 'server.key'), path.join(data, 'server.crt')]);
    await execa('chmod', ['600', path.join(data, 'server.key')]);
    await cluster.psql('alter system set ssl = on');
    await cluster.psql('select pg_reload_conf()');
    await cluster.psql('create database app');
    await cluster.psql('create table t (id int); insert into t values (1)', 'app');
    temp = await makeTempDir('synapse-ssl-');
    rootCert = path.join(temp.path, 'root.crt');
    await execa('cp', [path.join(data, 'server.crt'), rootCert]);
  });

  after(async function () {
    await cluster?.stop();
    await temp?.remove();
  });

  function env(query: string) {
    return {DATABASE_URL: `${cluster.url('postgres', 'app')}?${query}`, BACKUP_DIR: path.join(temp.path, 'backups')};
  }

  it('sslmode=require encrypts without verifying, for our connection and pg_dump alike, without node-pg\'s warning', async function () {
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: env('sslmode=require')});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
    expect(result.stderr).not.to.include('SECURITY WARNING');
  });

  it('sslmode=verify-full refuses a certificate for another name, as psql does', async function () {
    const query = `sslmode=verify-full&sslrootcert=${encodeURIComponent(rootCert)}`;
    const psql = await execa('psql', ['-X', '-d', `${cluster.url('postgres', 'app')}?${query}`, '-c', 'select 1'], {reject: false});
    expect(psql.exitCode, 'psql refuses it too').not.to.equal(0);
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: env(query)});
    expect(result.exitCode).to.equal(3);
    expect(result.json.error.message).to.include("the server's certificate was refused");
  });

  it('sslmode=verify-ca accepts the certificate its root signed, whatever the name', async function () {
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: env(`sslmode=verify-ca&sslrootcert=${encodeURIComponent(rootCert)}`)});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
  });

  it('sslmode=verify-full without a root certificate says where libpq looks for one', async function () {
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...env('sslmode=verify-full'), HOME: temp.path}});
    expect(result.exitCode).to.equal(2);
    expect(result.json.error.message).to.include(path.join(temp.path, '.postgresql', 'root.crt'));
  });
});
