import {expect} from 'chai';
import {mkdir, readdir} from 'node:fs/promises';
import path from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';

import {spawnCli} from '../../helpers/cli.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {startSmbShare, type SmbShare} from '../../helpers/smb-share.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

/** BACKUP_STORAGE=mount end to end, on a real SMB share mounted through rclone. */
describe('backups on a network mount (SMB)', function () {
  this.timeout(120_000);
  let share: SmbShare;
  let workspace: Workspace;
  let env: Record<string, string>;

  before(async function () {
    share = await startSmbShare();
  });

  after(async function () {
    await share?.stop();
  });

  beforeEach(async function () {
    workspace = await createWorkspace();
    env = {BACKUP_STORAGE: 'mount', BACKUP_DIR: path.join(share.mountPoint, path.basename(workspace.cwd))};
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('runs, lists, restores and cleans up as on a local directory', async function () {
    const first = await workspace.backup(env);
    const second = await workspace.backup(env, 'daily');
    const listed = await workspace.run(['backup', 'list', '--json'], env);
    expect(listed.json.result.backups.map((backup: {name: string; health: string}) => `${backup.name} ${backup.health}`)).to.have.members([`${second} good`, `${first} good`]);
    expect(await readdir(path.join(share.exported, path.basename(workspace.cwd)))).to.include.members([first, `${first}.meta.json`, second]);
    const restored = await workspace.run(['backup', 'restore', first, '--yes', '--json'], env);
    expect(restored.exitCode, restored.stdout).to.equal(0);
    const cleaned = await workspace.run(['backup', 'cleanup', '--json'], {...env, BACKUP_RETENTION_HOURLY: '1'});
    expect(cleaned.exitCode, cleaned.stdout).to.equal(0);
    expect(cleaned.json.warnings.join('\n')).to.include('the lock keeps out other runs on this host only');
  });

  it('refuses, with exit 7, a BACKUP_DIR that is not on a network mount', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {BACKUP_STORAGE: 'mount', BACKUP_DIR: path.join(workspace.cwd, 'local-backups')});
    expect(result.exitCode).to.equal(7);
    expect(result.json.error.code).to.equal('E_STORAGE');
    expect(result.json.error.message).to.include('is not on a network mount');
    expect(await readdir(workspace.cwd)).not.to.include('local-backups');
  });

  it('fails a backup whose share goes away midway, writes nothing to the local disk, and the next run after the remount repairs and says so', async function () {
    const earlier = await workspace.backup(env);
    // pg_dump has written its dump and waits a moment: the share drops while the backup is open.
    const bin = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'pg_dump "$@"\nsleep 3')});
    const child = spawnCli(['backup', 'run', '--json'], {cwd: workspace.cwd, env: {...workspace.env, ...env, PG_BIN_DIR: bin}});
    await sleep(1500);
    await share.drop();
    try {
      const outcome = await child;
      expect(outcome.exitCode, outcome.stdout).to.equal(7);
      expect(JSON.parse(outcome.stdout).error.message).to.match(/unable to store|is gone|not connected/);
      // The mount point is the local disk now: nothing may have been written under it.
      await mkdir(share.mountPoint, {recursive: true});
      expect(await readdir(share.mountPoint)).to.deep.equal([]);
      const meanwhile = await workspace.run(['backup', 'list', '--json'], env);
      expect(meanwhile.exitCode).to.equal(7);
      expect(meanwhile.json.error.message).to.include('is not on a network mount');
    } finally {
      await share.mount();
    }
    const listed = await workspace.run(['backup', 'list', '--json'], env);
    expect(listed.json.result.backups.filter((backup: {health: string}) => backup.health === 'good').map((backup: {name: string}) => backup.name)).to.deep.equal([earlier]);
    const next = await workspace.run(['backup', 'run', '--json'], env);
    expect(next.exitCode, next.stdout).to.equal(0);
    expect(next.json.warnings.join('\n')).to.include("took over the lock left by 'backup run'");
    const cleaned = await workspace.run(['backup', 'cleanup', '--json'], env);
    expect(cleaned.exitCode, cleaned.stdout).to.equal(0);
    const repaired = cleaned.json.result.decisions.filter((decision: {action: string; reason: string}) => decision.action === 'remove');
    expect(repaired.map((decision: {reason: string}) => decision.reason), 'what the failed run left is removed, and said').to.deep.equal(['left by a run that was killed before its metadata was written']);
  });
});
