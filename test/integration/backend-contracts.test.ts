import {mkdtemp, rm, stat} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import type {StorageBackend, StorageBackendFactory} from 'synapse-backup/plugin-api';
import {describeStorageContract} from 'synapse-backup/testing';

import {PROJECT_ROOT} from '../helpers/cli.js';
import {startS3fsMount, type S3Server, type S3fsMount} from '../helpers/s3fs-mount.js';
import {startSmbShare, type SmbShare} from '../helpers/smb-share.js';

/**
 * Every storage backend we ship, and every one the tests use, passes the contract suite, run
 * through the package export (synapse-backup/testing) exactly as another team's plugin runs it,
 * each through its plugin's own hook, against the real thing: a directory, an SMB share through
 * rclone, s3fs mounts on s3rver and on Ceph radosgw.
 */
async function factoryOf(hookModule: string): Promise<StorageBackendFactory> {
  const hook = (await import(hookModule)) as {default: () => Promise<StorageBackendFactory[]>};
  return (await hook.default())[0]!;
}

const PLUGIN_HOOK = (plugin: string) => path.join(PROJECT_ROOT, 'plugins', plugin, 'dist', 'hooks', 'storage-backends.js');
const FIXTURE_HOOK = (fixture: string) => path.join(PROJECT_ROOT, 'test', 'fixtures', 'plugins', fixture, 'hooks', 'storage-backends.js');

/** A backend in a fresh temporary directory under `parent()`, removed after each test. */
function inFreshDirectories(hook: string, parent: () => string, options: {readableBy?: boolean} = {}) {
  const directories = new Map<StorageBackend, string>();
  return {
    async create() {
      const directory = await mkdtemp(path.join(parent(), 'contract-'));
      const storage = await (await factoryOf(hook)).create({location: path.join(directory, 'backups'), access: 'read-write', create: true, env: {}});
      directories.set(storage, directory);
      return storage;
    },
    async dispose(storage: StorageBackend) {
      // One a network server is slow to let go of is not this test's failure.
      await rm(directories.get(storage)!, {recursive: true, force: true}).catch(() => {});
    },
    ...(options.readableBy
      ? {readableBy: async (storage: StorageBackend, key: string) => (((await stat(path.join(storage.location, key))).mode & 0o077) === 0 ? ('owner' as const) : ('others' as const))}
      : {}),
  };
}

describeStorageContract('local', inFreshDirectories(PLUGIN_HOOK('storage-local'), tmpdir, {readableBy: true}));

for (const fixture of ['memory-storage', 'stalling-storage', 'plain-put-storage']) {
  describeStorageContract(`fixture ${fixture}`, inFreshDirectories(FIXTURE_HOOK(fixture), tmpdir));
}

describe('on a real SMB share', function () {
  let share: SmbShare;
  before(async function () {
    this.timeout(60_000);
    share = await startSmbShare();
  });
  after(async function () {
    await share?.stop();
  });
  describeStorageContract('mount (SMB through rclone)', inFreshDirectories(PLUGIN_HOOK('storage-mount'), () => share.mountPoint));
});

for (const server of ['s3rver', 'radosgw'] as const satisfies readonly S3Server[]) {
  describe(`on a real s3fs mount (${server})`, function () {
    let mount: S3fsMount;
    before(async function () {
      this.timeout(120_000);
      mount = await startS3fsMount(server);
    });
    after(async function () {
      await mount?.stop();
    });
    describeStorageContract(`s3fs (${server})`, inFreshDirectories(PLUGIN_HOOK('storage-s3fs'), () => mount.mountPoint));
  });
}
