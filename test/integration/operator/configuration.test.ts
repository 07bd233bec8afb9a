import {expect} from 'chai';

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
