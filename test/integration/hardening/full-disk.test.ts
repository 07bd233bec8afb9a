import {expect} from 'chai';
import {execa} from 'execa';
import {mkdir, readdir} from 'node:fs/promises';
import path from 'node:path';

import {seedSampleData} from '../../helpers/database.js';
import {mountTmpfs, unmount} from '../../helpers/mounts.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

describe('cleanup on a 100% full disk', function () {
  let workspace: Workspace;
  let mountPoint: string;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 50);
    mountPoint = path.join(workspace.cwd, 'full');
    await mkdir(mountPoint);
    await mountTmpfs(mountPoint, {sizeBytes: 1024 * 1024});
  });

  afterEach(async function () {
    await unmount(mountPoint);
    await workspace.dispose();
  });

  it('works, as every disk-full message says it will, and frees the space', async function () {
    const small = {BACKUP_DIR: mountPoint};
    const names: string[] = [];
    for (let index = 0; index < 3; index++) {
      names.push(await workspace.backup(small));
      await new Promise((resolve) => setTimeout(resolve, 1050));
    }
    // Fill every last byte with a file that is not ours.
    await execa('dd', ['if=/dev/zero', `of=${path.join(mountPoint, 'filler')}`, 'bs=4096'], {reject: false});
    const full = await workspace.run(['backup', 'run', '--json'], small);
    expect(full.json.error.code).to.equal('E_STORAGE_FULL');
    expect(full.json.error.suggestion).to.include('backup cleanup');

    const cleanup = await workspace.run(['backup', 'cleanup', '--json'], {...small, BACKUP_RETENTION_HOURLY: '1'});
    expect(cleanup.exitCode, cleanup.stdout).to.equal(0);
    expect(cleanup.json.result.removedKeys).to.include.members([names[0], names[1]]);
    const left = await readdir(mountPoint);
    expect(left).to.include.members([names[2], 'filler']);
    expect(left).not.to.include('synapse-backup.lock');
    expect(left.filter((file) => file.endsWith('.partial'))).to.deep.equal([]);
  });

  it('a dry run on a full disk deletes nothing and leaves no lock', async function () {
    const name = await workspace.backup({BACKUP_DIR: mountPoint});
    await execa('dd', ['if=/dev/zero', `of=${path.join(mountPoint, 'filler')}`, 'bs=4096'], {reject: false});
    const dryRun = await workspace.run(['backup', 'cleanup', '--dry-run', '--json'], {BACKUP_DIR: mountPoint});
    expect(dryRun.exitCode, dryRun.stdout).to.equal(0);
    expect((await readdir(mountPoint)).filter((file) => !file.startsWith('synapse-backup.journal.')).sort()).to.deep.equal([name, `${name}.meta.json`, 'filler'].sort());
  });
});
