import {expect} from 'chai';
import {readdir} from 'node:fs/promises';
import path from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';

import {spawnCli} from '../../helpers/cli.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {startS3fsMount, type S3Server, type S3fsMount} from '../../helpers/s3fs-mount.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

/** BACKUP_STORAGE=s3fs end to end, on a real s3fs-fuse mount of a bucket on s3rver and on Ceph radosgw. */
for (const server of ['s3rver', 'radosgw'] as const satisfies readonly S3Server[]) describe(`backups on an s3fs mount (${server})`, function () {
  this.timeout(120_000);
  let mount: S3fsMount;
  let workspace: Workspace;
  let env: Record<string, string>;

  before(async function () {
    mount = await startS3fsMount(server);
  });

  after(async function () {
    await mount?.stop();
  });

  beforeEach(async function () {
    workspace = await createWorkspace();
    env = {BACKUP_STORAGE: 's3fs', BACKUP_DIR: path.join(mount.mountPoint, path.basename(workspace.cwd))};
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  const good = async () => {
    const listed = await workspace.run(['backup', 'list', '--json'], env);
    return listed.json.result.backups.filter((backup: {health: string}) => backup.health === 'good').map((backup: {name: string}) => backup.name);
  };

  it('runs, lists, restores and cleans up', async function () {
    const first = await workspace.backup(env);
    const second = await workspace.backup(env, 'daily');
    expect(await good()).to.have.members([second, first]);
    const restored = await workspace.run(['backup', 'restore', first, '--yes', '--json'], env);
    expect(restored.exitCode, restored.stdout).to.equal(0);
    const cleaned = await workspace.run(['backup', 'cleanup', '--json'], env);
    expect(cleaned.exitCode, cleaned.stdout).to.equal(0);
    if (!mount.bucketDirectory) return;
    const objects = await readdir(path.join(mount.bucketDirectory, path.basename(workspace.cwd)));
    expect(objects.filter((name) => name.endsWith('_S3rver_object')).sort()).to.include.members([`${first}._S3rver_object`, `${first}.meta.json._S3rver_object`]);
  });

  it('leaves nothing that counts as a backup when killed mid-upload, and the next cleanup removes what it left, saying so', async function () {
    const earlier = await workspace.backup(env);
    const bin = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'pg_dump "$@"\nexec sleep 30')});
    const child = spawnCli(['backup', 'run'], {cwd: workspace.cwd, env: {...workspace.env, ...env, PG_BIN_DIR: bin}});
    const directory = env.BACKUP_DIR!;
    // The run marker is written before the upload starts; pg_dump has sent its dump soon after.
    for (let waited = 0; !(await readdir(directory)).some((name) => name.endsWith('.pending')); waited += 50) {
      if (waited > 20_000) throw new Error('the backup never started its upload');
      await sleep(50);
    }
    await sleep(1000);
    child.kill('SIGKILL');
    await child;
    // s3fs uploads what a dead process had open when it closes the file: give it that time.
    await sleep(1000);
    expect(await good()).to.deep.equal([earlier]);
    const cleaned = await workspace.run(['backup', 'cleanup', '--json'], env);
    expect(cleaned.exitCode, cleaned.stdout).to.equal(0);
    const removed = [
      ...cleaned.json.result.decisions.filter((decision: {action: string}) => decision.action === 'remove').map((decision: {reason: string}) => decision.reason),
      ...cleaned.json.result.leftovers,
    ];
    expect(removed.join('\n')).to.match(/left by a run that was killed|\.partial/);
    expect((await readdir(directory)).filter((name) => !name.startsWith(earlier) && name !== 'synapse-backup.lock' && !name.startsWith('synapse-backup.journal.'))).to.deep.equal([]);
    expect(await good()).to.deep.equal([earlier]);
    const restored = await workspace.run(['backup', 'restore', earlier, '--yes', '--json'], env);
    expect(restored.exitCode, restored.stdout).to.equal(0);
  });
});
