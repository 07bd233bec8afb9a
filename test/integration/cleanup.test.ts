import {expect} from 'chai';
import {copyFile, rm, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {rewriteMetadata} from '../helpers/metadata.js';
import {createWorkspace, type Workspace} from '../helpers/workspace.js';

function nameAt(type: string, hoursAgo: number, base: Date): string {
  const at = new Date(base.getTime() - hoursAgo * 3_600_000);
  const stamp = at.toISOString().replaceAll(/[-:]/g, '').replace('T', '_').slice(0, 15);
  return `backup_${type}_${stamp}.sql.gz.enc`;
}

describe('backup cleanup', function () {
  let workspace: Workspace;
  let source: string;
  const base = new Date(Date.UTC(2026, 5, 1, 12));

  beforeEach(async function () {
    workspace = await createWorkspace();
    source = await workspace.backup();
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  /** A real backup under another name, as if it had been made at another time. */
  async function cloneAs(name: string): Promise<void> {
    await copyFile(path.join(workspace.backupDir, source), path.join(workspace.backupDir, name));
    const type = /^backup_([a-z]+)_/.exec(name)![1];
    await rewriteMetadata(workspace.backupDir, source, (metadata) => (metadata.backupType = type), {as: name});
  }

  /** Hourly and daily backups made at known times; `orphans` lose their metadata. The source goes. */
  async function populate(orphans: string[] = []): Promise<{hourly: string[]; daily: string[]}> {
    const hourly = Array.from({length: 5}, (_, index) => nameAt('hourly', index, base));
    const daily = Array.from({length: 3}, (_, index) => nameAt('daily', index * 24, base));
    for (const name of [...hourly, ...daily, ...orphans]) await cloneAs(name);
    for (const name of orphans) await rm(path.join(workspace.backupDir, `${name}.meta.json`));
    await rm(path.join(workspace.backupDir, source));
    await rm(path.join(workspace.backupDir, `${source}.meta.json`));
    return {hourly, daily};
  }

  it('keeps the newest N of each type and removes the rest with their metadata, leftovers too', async function () {
    const orphan = nameAt('hourly', 50, base);
    const {hourly, daily} = await populate([orphan]);
    const foreign = ['notes.txt', 'backup_hourly_20200101_000000.sql.gz.bak', 'someone.partial'];
    for (const file of foreign) await writeFile(path.join(workspace.backupDir, file), 'not ours');
    const leftover = `${nameAt('hourly', 99, base)}.abcdef012345.partial`;
    await writeFile(path.join(workspace.backupDir, leftover), 'half a backup');

    const env = {BACKUP_RETENTION_HOURLY: '2', BACKUP_RETENTION_DAILY: '1'};
    const dryRun = await workspace.run(['backup', 'cleanup', '--dry-run', '--json'], env);
    expect(dryRun.exitCode, dryRun.stderr).to.equal(0);
    const before = await workspace.backupFiles();
    const expectedRemoved = [...hourly.slice(2), ...daily.slice(1)];
    expect(dryRun.json.result.removedKeys.sort()).to.deep.equal([...expectedRemoved.flatMap((name) => [name, `${name}.meta.json`]), leftover].sort());
    expect(await workspace.backupFiles()).to.deep.equal(before);

    const text = await workspace.run(['backup', 'cleanup', '--dry-run'], env);
    expect(text.stdout).to.include(`would remove ${hourly[4]}  (${workspace.database}: beyond the newest 2 hourly backups (#5), which are verified)`);
    expect(text.stdout).to.include(`keep         ${orphan}  (?: metadata missing: integrity unknown, never removed automatically)`);

    const real = await workspace.run(['backup', 'cleanup', '--json'], env);
    expect(real.exitCode, real.stderr).to.equal(0);
    // The backups that replace the removed ones were read back first, and that is remembered.
    const kept = [...hourly.slice(0, 2), ...daily.slice(0, 1)].flatMap((name) => [name, `${name}.meta.json`, `${name}.verified.json`]);
    expect(await workspace.backupFiles()).to.deep.equal([...kept, orphan, ...foreign].sort());

    const restorable = await workspace.run(['backup', 'restore', hourly[0]!, '--yes']);
    expect(restorable.exitCode, restorable.stderr).to.equal(0);
  });

  it('uses 24 hourly by default and never removes the newest good backup of a type', async function () {
    const {hourly, daily} = await populate();
    const result = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_DAILY: '0', BACKUP_RETENTION_HOURLY: '0'});
    expect(result.exitCode).to.equal(0);
    expect(await workspace.backupFiles()).to.deep.equal([hourly[0]!, daily[0]!].flatMap((name) => [name, `${name}.meta.json`, `${name}.verified.json`]).sort());
    const defaults = await workspace.run(['backup', 'cleanup', '--json']);
    expect(defaults.json.result.policy).to.deep.equal({hourly: 24, daily: 30, monthly: 12});
    expect(defaults.json.result.removedKeys).to.deep.equal([]);
  });
});
