import {expect} from 'chai';
import {mkdir, readFile, readdir, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {runCli} from '../helpers/cli.js';
import {startThrowawayCluster, type ThrowawayCluster} from '../helpers/cluster.js';
import {fakeBinDir, versionAware} from '../helpers/fake-tools.js';
import {makeTempDir} from '../helpers/temp.js';

const PASSWORD = 'pw-Zq8#s3cr3t/with:odd@chars';
const KEY = 'encryption-key-that-must-never-leak-0123456789';

describe('secrets with password authentication (throwaway cluster)', function () {
  this.timeout(120_000);
  let cluster: ThrowawayCluster;
  let temp: {path: string; remove: () => Promise<void>};
  let binDir: string;
  let argvLog: string;

  before(async function () {
    cluster = await startThrowawayCluster({passwordAuth: true});
    await cluster.psql(`create role app login createdb password '${PASSWORD.replaceAll("'", "''")}'`);
    await cluster.psql('create database appdb owner app');
    await cluster.psql("create table items (id int primary key, label text); insert into items select g, 'item ' || g from generate_series(1, 50) g; alter table items owner to app", 'appdb');
  });

  after(async function () {
    await cluster?.stop();
  });

  beforeEach(async function () {
    temp = await makeTempDir('synapse-secrets-');
    argvLog = path.join(temp.path, 'argv.log');
    // Wrappers that record the argv and whether a password arrived through the environment.
    const record = (tool: string) => versionAware(tool as 'psql', `echo "${tool} $* PGPASSWORD=\${PGPASSWORD:+set}" >> ${argvLog}\nexec ${tool} "$@"`);
    binDir = await fakeBinDir(path.join(temp.path, 'bin'), {pg_dump: record('pg_dump'), psql: record('psql')});
  });

  afterEach(async function () {
    await temp.remove();
  });

  function env(password: string) {
    return {
      DATABASE_URL: cluster.url('app', 'appdb', password),
      BACKUP_DIR: path.join(temp.path, 'backups'),
      BACKUP_ENCRYPTION_KEY: KEY,
      BACKUP_ENCRYPTION_ITERATIONS: '20000',
      PG_BIN_DIR: binDir,
    };
  }

  async function everythingWritten(): Promise<string> {
    const backups = path.join(temp.path, 'backups');
    const files = await readdir(backups).catch(() => [] as string[]);
    const metadata = await Promise.all(files.filter((file) => file.endsWith('.json')).map((file) => readFile(path.join(backups, file), 'utf8')));
    return [await readFile(argvLog, 'utf8').catch(() => ''), ...metadata].join('\n');
  }

  it('backs up and restores with a password that reaches pg_dump and psql only through the environment', async function () {
    const backup = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: env(PASSWORD)});
    expect(backup.exitCode, backup.stdout + backup.stderr).to.equal(0);
    await cluster.psql("insert into items values (1000, 'after backup')", 'appdb');
    const restore = await runCli(['backup', 'restore', backup.json.result.name, '--yes', '--json'], {cwd: temp.path, env: env(PASSWORD)});
    expect(restore.exitCode, restore.stdout + restore.stderr).to.equal(0);
    expect(await cluster.psql('select count(*) from items', 'appdb')).to.equal('50');

    const log = await readFile(argvLog, 'utf8');
    expect(log).to.match(/^pg_dump --format=plain .*PGPASSWORD=set$/m);
    expect(log).to.match(/^psql .*PGPASSWORD=set$/m);
    const written = [backup.stdout, backup.stderr, restore.stdout, restore.stderr, await everythingWritten()].join('\n');
    for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), KEY]) expect(written).not.to.include(secret);
  });

  it('takes a password given as ?password= out of the URL: never in argv, messages or --json', async function () {
    const url = `${cluster.url('app', 'appdb')}?password=${encodeURIComponent(PASSWORD)}&sslmode=disable`;
    const backup = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...env(PASSWORD), DATABASE_URL: url}});
    expect(backup.exitCode, backup.stdout + backup.stderr).to.equal(0);
    const log = await readFile(argvLog, 'utf8');
    expect(log).to.match(/^pg_dump --format=plain .*sslmode=disable.*PGPASSWORD=set$/m);
    const wrongUrl = `${cluster.url('app', 'appdb')}?password=wrong-in-the-query`;
    const failed = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...env(PASSWORD), DATABASE_URL: wrongUrl}});
    expect(failed.json.error.code).to.equal('E_DB_AUTH');
    const written = [backup.stdout, backup.stderr, failed.stdout, failed.stderr, await everythingWritten()].join('\n');
    for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), 'wrong-in-the-query']) expect(written).not.to.include(secret);
  });

  it('refuses sslpassword in the URL rather than put it on a command line', async function () {
    const url = `${cluster.url('app', 'appdb', PASSWORD)}?sslpassword=key-passphrase-secret`;
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...env(PASSWORD), DATABASE_URL: url}});
    expect(result.exitCode).to.equal(2);
    expect(result.json.error.message).to.include('sslpassword');
    expect(result.stdout + result.stderr + (await everythingWritten())).not.to.include('key-passphrase-secret');
  });

  it('says a password is needed when none was given to a server that asks for one', async function () {
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...env(PASSWORD), DATABASE_URL: cluster.url('app', 'appdb')}});
    expect(result.exitCode).to.equal(3);
    expect(result.json.error.code).to.equal('E_DB_AUTH');
    expect(result.json.error.message).to.include('the server asks for a password and none was given');
    expect(result.json.error.suggestion).to.include('.pgpass');
  });

  it('reads the password from ~/.pgpass for its own connection and for pg_dump, as libpq does', async function () {
    const home = path.join(temp.path, 'home');
    await mkdir(home);
    await writeFile(path.join(home, '.pgpass'), `127.0.0.1:${cluster.port}:appdb:app:${PASSWORD.replaceAll('\\', '\\\\').replaceAll(':', '\\:')}\n`, {mode: 0o600});
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...env(PASSWORD), DATABASE_URL: cluster.url('app', 'appdb'), HOME: home}});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
    expect(await readFile(argvLog, 'utf8')).to.match(/^pg_dump --format=plain .*PGPASSWORD=$/m);
  });

  it('reads a pg_service.conf service for its own connection and for pg_dump alike (PGSERVICE, or service= in the URL)', async function () {
    const home = path.join(temp.path, 'home');
    await mkdir(home, {recursive: true});
    await writeFile(path.join(home, '.pg_service.conf'), `# the backup user's services\n[app]\nhost=127.0.0.1\nport=${cluster.port}\ndbname=appdb\nuser=app\npassword=${PASSWORD}\n`, {mode: 0o600});
    const base = {...env(PASSWORD), DATABASE_URL: undefined, HOME: home};
    const viaVariable = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...base, PGSERVICE: 'app'}});
    expect(viaVariable.exitCode, viaVariable.stdout + viaVariable.stderr).to.equal(0);
    expect(viaVariable.json.result.metadata.database.name).to.equal('appdb');
    const viaUrl = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...base, DATABASE_URL: 'postgresql:///?service=app'}});
    expect(viaUrl.exitCode, viaUrl.stdout + viaUrl.stderr).to.equal(0);
    const missing = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...base, PGSERVICE: 'nope'}});
    expect(missing.exitCode).to.equal(2);
    expect(missing.json.error.message).to.include("unable to use service 'nope'");
    for (const result of [viaVariable, viaUrl, missing]) expect(result.stdout + result.stderr).not.to.include(PASSWORD);
  });

  it('connects through a socket directory given as host= in the URL, as libpq does', async function () {
    const url = `postgresql:///appdb?host=${encodeURIComponent(cluster.directory)}&port=${cluster.port}&user=app`;
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: {...env(PASSWORD), DATABASE_URL: url, PGPASSWORD: PASSWORD}});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
    expect(result.json.result.metadata.database.name).to.equal('appdb');
  });

  it('reports a wrong password as an authentication failure without showing it', async function () {
    const wrong = 'wrong-password-visible?';
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: env(wrong)});
    expect(result.exitCode).to.equal(3);
    expect(result.json.error.code).to.equal('E_DB_AUTH');
    expect(result.json.error.message).to.match(/password authentication failed/);
    for (const secret of [wrong, encodeURIComponent(wrong), KEY]) expect(result.stdout + result.stderr).not.to.include(secret);
  });

  it('explains that a restore needs CREATEDB, leaving the database as it was', async function () {
    await cluster.psql("create role plain login password 'plain-pw'");
    await cluster.psql('create database plaindb owner plain');
    await cluster.psql("create table t (id int); insert into t values (1), (2); alter table t owner to plain", 'plaindb');
    const plainEnv = {...env(PASSWORD), DATABASE_URL: cluster.url('plain', 'plaindb', 'plain-pw')};
    const backup = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: plainEnv});
    expect(backup.exitCode, backup.stdout).to.equal(0);
    await cluster.psql('insert into t values (3)', 'plaindb');
    const restore = await runCli(['backup', 'restore', backup.json.result.name, '--yes', '--json'], {cwd: temp.path, env: plainEnv});
    expect(restore.exitCode).to.equal(3);
    expect(restore.json.error.code).to.equal('E_DB_PRIVILEGE');
    expect(restore.json.error.suggestion).to.include('CREATEDB');
    expect(await cluster.psql('select count(*) from t', 'plaindb')).to.equal('3');
    expect(await cluster.psql("select count(*) from pg_database where datname like 'plaindb_%'")).to.equal('0');
  });

  it('reads DATABASE_URL and the key from .env, warning that the key sits in a file', async function () {
    const {BACKUP_ENCRYPTION_KEY, DATABASE_URL, ...rest} = env(PASSWORD);
    await writeFile(path.join(temp.path, '.env'), `DATABASE_URL=${DATABASE_URL}\nBACKUP_ENCRYPTION_KEY=${BACKUP_ENCRYPTION_KEY}\n`);
    const result = await runCli(['backup', 'run', '--json'], {cwd: temp.path, env: rest});
    expect(result.exitCode, result.stdout).to.equal(0);
    expect(result.json.warnings.join('\n')).to.match(/comes from a \.env file/);
    expect(result.json.result.name).to.match(/\.enc$/);
    expect(result.stdout + result.stderr + (await everythingWritten())).not.to.include(PASSWORD);
  });
});
