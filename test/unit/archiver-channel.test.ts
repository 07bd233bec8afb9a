import {expect} from 'chai';
import {closeSync, openSync, readFileSync} from 'node:fs';
import path from 'node:path';

import {releaseArchiver, takeArchiverChannel} from '../../src/cli/wal/archiver-channel.js';
import {makeTempDir} from '../helpers/temp.js';

describe("the archiver's answer channel", function () {
  it('writes only to a pipe: a descriptor named in the environment that is a file is left alone, and the setting leaves the environment', async function () {
    const file = path.join((await makeTempDir('synapse-channel-')).path, 'not-a-pipe');
    const descriptor = openSync(file, 'w+');
    try {
      const env: NodeJS.ProcessEnv = {SYNAPSE_BACKUP_ARCHIVER_FD: String(descriptor)};
      takeArchiverChannel(env);
      expect(env).to.not.have.property('SYNAPSE_BACKUP_ARCHIVER_FD');
      releaseArchiver(0);
      expect(readFileSync(file, 'utf8')).to.equal('');
    } finally {
      closeSync(descriptor);
    }
  });
});
