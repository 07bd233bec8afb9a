import {expect} from 'chai';
import {mkdir, mkdtemp, readdir, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {Readable} from 'node:stream';

import {startSmbShare, type SmbShare} from '../../../test/helpers/smb-share.js';
import {MountStorage} from '../src/mount-storage.js';

/** Against a real SMB share (smbd on loopback) mounted through rclone's FUSE mount. */
describe('mount storage on a real SMB share', function () {
  this.timeout(60_000);
  let share: SmbShare;
  let directories = 0;

  before(async function () {
    share = await startSmbShare();
  });

  after(async function () {
    await share?.stop();
  });

  const nextDirectory = () => path.join(share.mountPoint, `backups-${++directories}`);

  it('finds that this server has no hard links, and declares no conditional put', async function () {
    const storage = await MountStorage.open(nextDirectory(), 'read-write', {create: true});
    expect(storage.capabilities).to.deep.equal({atomicPut: true, conditionalPut: false, rangeReads: true, conditionalReplace: false});
    expect(await storage.list(), 'the probe is gone').to.deep.equal([]);
  });

  it('refuses a directory that is not on a network mount, before creating anything', async function () {
    const local = await mkdtemp(path.join(tmpdir(), 'synapse-not-a-mount-'));
    try {
      let failure: NodeJS.ErrnoException | undefined;
      await MountStorage.open(path.join(local, 'backups'), 'read-write', {create: true}).catch((error) => (failure = error));
      expect(failure?.code).to.equal('ENOTMOUNTED');
      expect(failure?.message).to.match(/is not on a network mount: it is on \S+ .* on \//);
      expect(await readdir(local)).to.deep.equal([]);
    } finally {
      await rm(local, {recursive: true, force: true});
    }
  });

  it('stops writing when the mount drops, and never writes to the local disk under it', async function () {
    const directory = nextDirectory();
    const storage = await MountStorage.open(directory, 'read-write', {create: true});
    await storage.put('earlier', Readable.from([Buffer.from('keep me')]));
    await share.drop();
    try {
      // The mount point is a plain local directory now; an ill-made backend would recreate the tree there.
      await mkdir(directory, {recursive: true});
      let failure: NodeJS.ErrnoException | undefined;
      await storage.put('after-drop', Readable.from([Buffer.from('x'.repeat(1024))])).catch((error) => (failure = error));
      expect(failure?.code).to.equal('ENOTMOUNTED');
      expect(failure?.message).to.include('is gone; nothing was written to the local disk under it');
      expect(await readdir(directory)).to.deep.equal([]);
      // space() too: the local disk's free space under the mount point would say nothing about the share.
      for (const operation of [() => storage.list(), () => storage.stat('earlier'), () => storage.get('earlier'), () => storage.delete('earlier'), () => storage.space()]) {
        const code = await operation().then(
          () => 'no error',
          (error: NodeJS.ErrnoException) => error.code,
        );
        expect(code).to.equal('ENOTMOUNTED');
      }
      await rm(directory, {recursive: true, force: true});
    } finally {
      await share.mount();
    }
    const again = await MountStorage.open(directory, 'read', {});
    expect((await again.list()).map((object) => object.key)).to.deep.equal(['earlier']);
  });
});
