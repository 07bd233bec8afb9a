import {expect} from 'chai';
import {execa} from 'execa';
import path from 'node:path';

import {baseEnvironment, PROJECT_ROOT} from '../../helpers/cli.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

const KILLER = path.join(PROJECT_ROOT, 'test', 'fixtures', 'crash', 'killed-at.ts');

describe('backup run killed at the worst moment', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  async function backupKilledAt(moment: string, run = 'backup', env: Record<string, string> = {}): Promise<void> {
    const result = await execa(process.execPath, ['--import', 'tsx', KILLER], {
      cwd: PROJECT_ROOT,
      env: {...baseEnvironment(), ...workspace.env, ...env, KILL_AT: moment, RUN: run} as Record<string, string>,
      extendEnv: false,
      reject: false,
    });
    expect(result.signal, result.stdout + result.stderr).to.equal('SIGKILL');
  }

  it('after publishing the data file but before its metadata: the next cleanup removes what it left', async function () {
    const good = await workspace.backup();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await backupKilledAt('put:\\.meta\\.json$');
    const files = await workspace.backupFiles();
    const killed = files.find((file) => file !== good && /^backup_.*\.enc$/.test(file))!;
    expect(killed, 'the killed run published its data file').to.be.a('string');
    expect(files).to.include(`${killed}.pending`);
    expect(files).not.to.include(`${killed}.meta.json`);

    const listed = await workspace.run(['backup', 'list', '--json']);
    expect(listed.json.result.backups.map((backup: {name: string}) => backup.name)).to.deep.equal([good]);
    const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
    expect(cleanup.exitCode, cleanup.stdout).to.equal(0);
    expect(cleanup.json.result.removedKeys).to.deep.equal([killed, `${killed}.pending`]);
    expect(await workspace.backupFiles()).to.deep.equal([good, `${good}.meta.json`]);
  });

  it('never removes a backup whose metadata was merely lost (no run marker)', async function () {
    const good = await workspace.backup();
    const {rm} = await import('node:fs/promises');
    await rm(path.join(workspace.backupDir, `${good}.meta.json`));
    const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
    expect(cleanup.json.result.removedKeys).to.deep.equal([]);
    expect(await workspace.backupFiles()).to.deep.equal([good]);
  });

  it('after writing its metadata but before removing its marker: the backup is good, the marker goes', async function () {
    await backupKilledAt('delete:\\.pending$');
    const files = await workspace.backupFiles();
    const name = files.find((file) => file.endsWith('.enc'))!;
    expect(files).to.deep.equal([name, `${name}.meta.json`, `${name}.pending`, "synapse-backup.lock"]);
    const listed = await workspace.run(['backup', 'list', '--json']);
    expect(listed.json.result.backups[0]).to.include({name, health: 'good'});
    const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
    expect(cleanup.json.result.removedKeys).to.deep.equal([`${name}.pending`]);
    expect(await workspace.backupFiles()).to.deep.equal([name, `${name}.meta.json`]);
  });

  describe('cleanup killed while removing a backup', function () {
    let older: string;
    let newer: string;

    beforeEach(async function () {
      older = await workspace.backup();
      await new Promise((resolve) => setTimeout(resolve, 1100));
      newer = await workspace.backup();
    });

    // Each moment of a removal: after the marker, after the metadata, after the verification record, after the data.
    for (const [label, suffix] of [['its metadata', '\\.meta\\.json'], ['its verification record', '\\.verified\\.json'], ['its data file', ''], ['its run marker', '\\.pending']]) {
      it(`leaves nothing the next cleanup cannot finish (killed while deleting ${label})`, async function () {
        // Any record will do: a removal deletes the one it finds.
        const {writeFile} = await import('node:fs/promises');
        await writeFile(path.join(workspace.backupDir, `${older}.verified.json`), '{}');
        await backupKilledAt(`delete:^${older.replaceAll('.', '\\.')}${suffix}$`, 'cleanup', {BACKUP_RETENTION_HOURLY: '1'});
        expect(await workspace.backupFiles(), 'the kill came before the removal finished').to.include.members(suffix === '\\.pending' ? [`${older}.pending`] : [older]);
        const next = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
        expect(next.exitCode, next.stdout).to.equal(0);
        const files = await workspace.backupFiles();
        expect(files.filter((file) => file.startsWith(older)), files.join(', ')).to.deep.equal([]);
        expect(files).to.include.members([newer, `${newer}.meta.json`]);
      });
    }
  });
});
