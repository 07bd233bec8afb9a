import {expect} from 'chai';
import {existsSync} from 'node:fs';
import {mkdir, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {mountTmpfs, unmount} from '../helpers/mounts.js';
import {makeTempDir, removeTempDirs} from '../helpers/temp.js';

/** The run's scratch directories are removed at its end (test/helpers/root-hooks.ts), but never through a mount. */
describe('test scratch directories', function () {
  it('are removed, except one with a mount inside, which is left alone', async function () {
    const plain = await makeTempDir('synapse-scratch-plain-');
    await mkdir(path.join(plain.path, 'nested', 'deeper'), {recursive: true});
    const mounted = await makeTempDir('synapse-scratch-mounted-');
    const mountPoint = path.join(mounted.path, 'tmpfs');
    await mkdir(mountPoint);
    await mountTmpfs(mountPoint, {sizeBytes: 1024 * 1024});
    // What the mount holds (a test's S3 bucket, a share) is not walked into, let alone removed.
    await writeFile(path.join(mountPoint, 'held'), 'held');
    try {
      const {removed, kept} = await removeTempDirs([plain.path, mounted.path]);
      expect(removed).to.equal(1);
      expect(kept).to.deep.equal([mounted.path]);
      expect(existsSync(plain.path)).to.equal(false);
      expect(existsSync(path.join(mountPoint, 'held'))).to.equal(true);
    } finally {
      await unmount(mountPoint);
      await mounted.remove();
    }
  });
});
