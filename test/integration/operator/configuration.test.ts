import {expect} from 'chai';
import {existsSync} from 'node:fs';
import {stat} from 'node:fs/promises';
import path from 'node:path';

import {seedSampleData, snapshotDatabase, sql} from '../../helpers/database.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

describe('configuration as operators meet it', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 20);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('restores in spite of settings only other commands use, and says what is wrong with them', async function () {
    const name = await workspace.backup();
    const before = await snapshotDatabase(workspace.database);
    await sql(workspace.database, 'create table after_backup (id int)');
    const broken = {BACKUP_COMPRESSION: 'bogus', BACKUP_RETENTION_DAILY: 'abc', SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS: 'often'};
    const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], broken);
    expect(restored.exitCode, restored.stdout).to.equal(0);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
    const warnings = restored.json.warnings.join('\n');
    for (const name of Object.keys(broken)) expect(warnings).to.include(name);
    const listed = await workspace.run(['backup', 'list', '--json'], broken);
    expect(listed.exitCode).to.equal(0);
    // The commands that use them still refuse them.
    expect((await workspace.run(['backup', 'run', '--json'], broken)).json.error.message).to.include("BACKUP_COMPRESSION 'bogus'");
    expect((await workspace.run(['backup', 'cleanup', '--json'], broken)).json.error.message).to.include("BACKUP_RETENTION_DAILY 'abc'");
  });

  it('shows the key warnings on restore as on backup run', async function () {
    const short = {BACKUP_ENCRYPTION_KEY: 'short-key'};
    const name = await workspace.backup(short);
    const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], short);
    expect(restored.exitCode, restored.stdout).to.equal(0);
    expect(restored.json.warnings.join('\n')).to.match(/shorter than 32 characters/);
    expect(restored.json.warnings.join('\n')).not.to.match(/UNENCRYPTED/);
  });

  it('calls an unencoded % in DATABASE_URL a configuration error that says to percent-encode', async function () {
    const url = workspace.databaseUrl.replace('postgresql://postgres@', 'postgresql://postgres:50%off@');
    for (const command of [['backup', 'list'], ['backup', 'run']]) {
      const result = await workspace.run([...command, '--json'], {DATABASE_URL: url});
      expect(result.exitCode, command.join(' ')).to.equal(2);
      expect(result.json.error.code).to.equal('E_CONFIG');
      expect(result.json.error.message).to.include("its password holds a '%'");
      expect(result.json.error.suggestion).to.include('%25');
      expect(result.stdout).not.to.include('50%off');
    }
  });

  it('connects as the OS user when DATABASE_URL names none, as psql does, even without USER in the environment', async function () {
    // The machine's server has a role for the OS user (root) and trusts it.
    const url = workspace.databaseUrl.replace('postgresql://postgres@', 'postgresql://');
    const result = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: url, USER: undefined, LOGNAME: undefined});
    expect(result.exitCode, result.stdout).to.equal(0);
  });
});

describe('a wrong BACKUP_DIR, as every command sees it', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('is reported the same way by list, restore and cleanup when it does not exist, and none creates it', async function () {
    const missing = path.join(workspace.cwd, 'no-such-dir');
    for (const command of [['backup', 'list'], ['backup', 'restore', 'backup_hourly_20260101_000000.sql.gz.enc', '--yes'], ['backup', 'cleanup']]) {
      const result = await workspace.run([...command, '--json'], {BACKUP_DIR: missing});
      expect(result.exitCode, command.join(' ')).to.equal(7);
      expect(result.json.error.message, command.join(' ')).to.equal(`unable to open backup storage '${missing}': it does not exist`);
      expect(existsSync(missing), command.join(' ')).to.equal(false);
    }
    // backup run creates it, parents too, 0700.
    const nested = path.join(missing, 'nested');
    await workspace.backup({BACKUP_DIR: nested});
    expect((await stat(nested)).mode & 0o777).to.equal(0o700);
  });

  it('is "not a directory" for every command when it names a file', async function () {
    for (const command of [['backup', 'run'], ['backup', 'list'], ['backup', 'cleanup']]) {
      const result = await workspace.run([...command, '--json'], {BACKUP_DIR: '/etc/passwd'});
      expect(result.exitCode, command.join(' ')).to.equal(7);
      expect(result.json.error.message, command.join(' ')).to.include("'/etc/passwd' is not a directory");
    }
  });

  it('fails at once where a directory cannot be made (under /proc), instead of spinning', async function () {
    const started = Date.now();
    const result = await workspace.run(['backup', 'run', '--json'], {BACKUP_DIR: '/proc/synapse-backup-test/backups'});
    expect(result.exitCode).to.equal(7);
    expect(result.json.error.message).to.include("unable to create backup storage '/proc/synapse-backup-test/backups'");
    expect(Date.now() - started).to.be.lessThan(10_000);
  });
});
