import {expect} from 'chai';

import type {StorageBackend} from '../../src/contracts/storage.js';
import {storageError} from '../../src/core/storage/index.js';

const storage = {location: '/mnt/share/backups'} as StorageBackend;
const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/mnt/share/backups/x'"), {code: 'ENOENT'});

describe('storageError', function () {
  const cases: Array<[string, string | undefined, string, number]> = [
    ['a reader asking for one backup', 'backup_x', 'read backup', 10],
    ['a lookup of one backup', 'backup_x', 'find backup', 10],
    // A share that drops under a running backup: the location is gone, not a backup.
    ['a writer', 'backup_x', 'store backup', 7],
    ['the metadata written last', 'backup_x.meta.json', 'write metadata', 7],
    ['a lock', 'synapse-backup.lock', 'create lock', 7],
    ['a listing', undefined, 'list backups in', 7],
  ];
  for (const [what, key, action, exitCode] of cases) {
    it(`maps ENOENT for ${what} to exit ${exitCode}`, function () {
      expect(storageError(enoent, storage, action, key).exitCode).to.equal(exitCode);
    });
  }
});
