import {expect} from 'chai';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';

import {LocalDirectoryStorage} from '../../plugins/storage-local/src/local-directory-storage.js';
import {resolveSettings} from '../../src/core/config/index.js';
import {isSynapseError} from '../../src/core/errors/index.js';
import {ProgressEvents} from '../../src/core/events/index.js';
import {restoreBackup, testRestore} from '../../src/core/services/index.js';
import {databaseNames, seedSampleData, snapshotDatabase, sql} from '../helpers/database.js';
import {createWorkspace, type Workspace} from '../helpers/workspace.js';

describe('restoreBackup (in process)', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace({encrypted: false});
    await seedSampleData(workspace.database, 300);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('refuses to swap in a file that changed between its verification and the load, leaving the target as it was', async function () {
    const original = await workspace.backup();
    await sql(workspace.database, "delete from orders where id % 3 = 0; update customers set name = 'replacement'");
    const replacement = await workspace.backup();
    await sql(workspace.database, 'create table after_both_backups (id int); insert into after_both_backups values (1)');
    const current = await snapshotDatabase(workspace.database);

    const settings = resolveSettings({process: {DATABASE_URL: workspace.databaseUrl, BACKUP_DIR: workspace.backupDir}, dotenv: {}, cwd: workspace.cwd});
    const storage = await LocalDirectoryStorage.open(workspace.backupDir);
    const events = new ProgressEvents();
    // Once the load begins, the original is overwritten in place by a complete, valid backup of
    // other data: every stage decodes it and psql loads it, so only the second read's checksum can tell.
    events.on('stage', (event) => {
      if (event.stage === 'load' && event.status === 'started') writeFileSync(path.join(workspace.backupDir, original), readFileSync(path.join(workspace.backupDir, replacement)));
    });
    let failure: unknown;
    await restoreBackup({settings, storage, encryptionProviders: new Map(), events, signal: new AbortController().signal}, {name: original, confirm: async () => {}}).catch(
      (error: unknown) => (failure = error),
    );

    expect(isSynapseError(failure), String(failure)).to.equal(true);
    expect((failure as {code: string}).code).to.equal('E_INTEGRITY');
    expect((failure as Error).message).to.match(/changed after it was verified/);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(current);
    expect(await databaseNames(workspace.database)).to.deep.equal([workspace.database]);
  });

  it('test-restores against the metadata its verification checked, not a copy swapped in afterwards', async function () {
    const name = await workspace.backup();
    const settings = resolveSettings({process: {DATABASE_URL: workspace.databaseUrl, BACKUP_DIR: workspace.backupDir}, dotenv: {}, cwd: workspace.cwd});
    const storage = await LocalDirectoryStorage.open(workspace.backupDir);
    const events = new ProgressEvents();
    const metadataFile = path.join(workspace.backupDir, `${name}.meta.json`);
    // Once verified, the metadata is replaced by one whose fingerprint no restore can match.
    events.on('stage', (event) => {
      if (event.stage === 'prepare' && event.status === 'started') {
        const swapped = JSON.parse(readFileSync(metadataFile, 'utf8'));
        for (const table of swapped.fingerprint.tables) table.rows += 1;
        writeFileSync(metadataFile, JSON.stringify(swapped));
      }
    });
    const result = await testRestore({settings, storage, encryptionProviders: new Map(), events, signal: new AbortController().signal}, name);
    expect(result.comparison.status).to.equal('matched');
    expect(result.comparison.tables).to.be.greaterThan(0);
  });
});
