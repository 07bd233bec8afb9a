import {expect} from 'chai';
import path from 'node:path';

import {LocalDirectoryStorage} from '../../plugins/storage-local/src/local-directory-storage.js';
import {resolveSettings} from '../../src/core/config/index.js';
import {ProgressEvents} from '../../src/core/events/index.js';
import {runBackup} from '../../src/core/services/index.js';
import {createWorkspace, type Workspace} from '../helpers/workspace.js';

describe('runBackup (in process)', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace({encrypted: false});
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('gives two backups started in the same second distinct names, and both are complete', async function () {
    const settings = resolveSettings({process: {DATABASE_URL: workspace.databaseUrl, BACKUP_DIR: workspace.backupDir}, dotenv: {}, cwd: workspace.cwd});
    const storage = await LocalDirectoryStorage.open(path.join(workspace.backupDir), 'read-write', {create: true});
    const frozen = new Date('2026-02-22T14:30:00.250Z');
    const context = {settings, storage, encryption: undefined, events: new ProgressEvents(), signal: new AbortController().signal, toolVersion: 'test', now: () => frozen};
    const first = await runBackup(context, {type: 'hourly'});
    const second = await runBackup(context, {type: 'hourly'});
    expect(first.name).to.equal('backup_hourly_20260222_143000.sql.gz');
    expect(second.name).to.equal('backup_hourly_20260222_143000_1.sql.gz');
    expect(await workspace.backupFiles()).to.deep.equal([first.name, `${first.name}.meta.json`, second.name, `${second.name}.meta.json`].sort());
    const listed = await workspace.run(['backup', 'list', '--json'], {BACKUP_ENCRYPTION_KEY: undefined});
    expect(listed.json.result.backups.map((backup: {name: string; health: string}) => [backup.name, backup.health])).to.deep.equal([
      [second.name, 'good'],
      [first.name, 'good'],
    ]);
  });
});
