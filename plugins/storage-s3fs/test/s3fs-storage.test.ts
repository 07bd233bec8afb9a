import {expect} from 'chai';
import {mkdtemp, readdir, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {Readable} from 'node:stream';
import type {StorageBackendFactory} from 'synapse-backup/plugin-api';

import {startS3fsMount, type S3Server, type S3fsMount} from '../../../test/helpers/s3fs-mount.js';
import registerStorageBackends from '../src/hooks/storage-backends.js';

/** Against a real s3fs-fuse mount of a bucket, on s3rver (fast, lenient) and on Ceph radosgw (strict). */
for (const server of ['s3rver', 'radosgw'] as const satisfies readonly S3Server[]) describe(`s3fs storage on a real s3fs mount (${server})`, function () {
  this.timeout(60_000);
  let mount: S3fsMount;
  let factory: StorageBackendFactory;

  before(async function () {
    mount = await startS3fsMount(server);
    [factory] = (await registerStorageBackends()) as [StorageBackendFactory];
  });

  after(async function () {
    await mount?.stop();
  });

  const open = (location: string, access: 'read' | 'read-write' = 'read-write') => factory.create({location, access, create: true, env: {}});

  it('declares what s3fs cannot do: no conditional put', async function () {
    const storage = await open(path.join(mount.mountPoint, 'capabilities'));
    expect(storage.scheme).to.equal('s3fs');
    expect(storage.capabilities).to.deep.equal({atomicPut: true, conditionalPut: false, rangeReads: true, conditionalReplace: false});
    // s3fs reports a made-up capacity (terabytes, never full): status must not believe it.
    expect(await storage.space?.()).to.equal(undefined);
  });

  it('stores what reached the bucket, whole', async function () {
    const storage = await open(path.join(mount.mountPoint, 'whole'));
    const data = Buffer.alloc(3 * 1024 * 1024, 7);
    const info = await storage.put('object', Readable.from([data]));
    expect(info.size).to.equal(data.length);
    if (!mount.bucketDirectory) return;
    const objects = await readdir(path.join(mount.bucketDirectory, 'whole'));
    expect(objects.filter((name) => name.startsWith('object') && name.endsWith('_S3rver_object'))).to.deep.equal(['object._S3rver_object']);
  });

  it('refuses a directory that is not on an s3fs mount', async function () {
    const local = await mkdtemp(path.join(tmpdir(), 'synapse-not-s3fs-'));
    try {
      const failure = await open(path.join(local, 'backups')).catch((error: NodeJS.ErrnoException) => error);
      expect((failure as NodeJS.ErrnoException).code).to.equal('ENOTMOUNTED');
      expect((failure as Error).message).to.include('writes only to a mounted fuse.s3fs file system');
    } finally {
      await rm(local, {recursive: true, force: true});
    }
  });
});
