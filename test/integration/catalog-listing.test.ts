import {expect} from 'chai';
import {mkdir, writeFile} from 'node:fs/promises';
import path from 'node:path';

import type {ListOptions, StorageBackend} from '../../src/contracts/storage.js';
import {LocalDirectoryStorage} from '../../plugins/storage-local/src/local-directory-storage.js';
import {readCatalog} from '../../src/core/catalog/index.js';
import {wrapStorage} from '../helpers/storage.js';
import {makeTempDir} from '../helpers/temp.js';

const NAME = 'backup_hourly_20260222_143000.sql.gz.enc';

describe('the catalog on the storage contract', function () {
  let temp: Awaited<ReturnType<typeof makeTempDir>>;

  beforeEach(async function () {
    temp = await makeTempDir('synapse-catalog-');
  });

  afterEach(async function () {
    await temp.remove();
  });

  it('lists only the prefixes it sorts out, a page at a time, never the WAL archive nor foreign files', async function () {
    await mkdir(path.join(temp.path, 'wal'));
    await writeFile(path.join(temp.path, 'wal', NAME), 'a backup name in the WAL area');
    await writeFile(path.join(temp.path, 'notes.txt'), 'not ours');
    await writeFile(path.join(temp.path, NAME), 'data');
    const local = await LocalDirectoryStorage.open(temp.path);
    const asked: ListOptions[] = [];
    const storage: StorageBackend = {
      ...wrapStorage(local, {
        list: async () => {
          throw new Error('the catalog lists a page at a time where the backend can');
        },
      }),
      listPage: async (options = {}) => {
        asked.push(options);
        return local.listPage(options);
      },
    };
    const catalog = await readCatalog(storage);
    expect(catalog.backups.map((entry) => [entry.name, entry.health])).to.deep.equal([[NAME, 'metadata-missing']]);
    expect(asked.map((options) => options.prefix)).to.deep.equal(['backup_', 'synapse-backup']);
  });

  it('takes metadata that does not parse yet, beside its run\'s marker, for a backup still being written on a storage without atomic puts', async function () {
    await writeFile(path.join(temp.path, NAME), 'data');
    await writeFile(path.join(temp.path, `${NAME}.pending`), '');
    await writeFile(path.join(temp.path, `${NAME}.meta.json`), '{"backupName": "backup_hou');
    const local = await LocalDirectoryStorage.open(temp.path);
    const atomic = await readCatalog(local);
    expect(atomic.backups[0]).to.include({health: 'metadata-unreadable'});
    const visibleWhileWritten = {...wrapStorage(local, {}), capabilities: {...local.capabilities, atomicPut: false}};
    const catalog = await readCatalog(visibleWhileWritten);
    expect(catalog.backups[0]).to.include({health: 'incomplete'});
    expect(catalog.backups[0]!.problem).to.include('still being written');
  });
});
