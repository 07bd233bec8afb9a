import {expect} from 'chai';
import {execa} from 'execa';
import {readFile} from 'node:fs/promises';
import path from 'node:path';

import {createTestDatabase, seedSampleData, snapshotDatabase, sql} from '../helpers/database.js';
import {TEST_KEY, createWorkspace, type Workspace} from '../helpers/workspace.js';

/** The README's emergency recipes: openssl, then the format's own decompressor, then psql. */
const STOCK_RESTORE = {
  gzip: 'openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter "$ITER" -pass env:BACKUP_ENCRYPTION_KEY -in "$FILE" | gunzip | psql -X -q -v ON_ERROR_STOP=1 "$TARGET"',
  zstd: 'openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter "$ITER" -pass env:BACKUP_ENCRYPTION_KEY -in "$FILE" | zstd -d -q | psql -X -q -v ON_ERROR_STOP=1 "$TARGET"',
} as const;

/** About 14 MB of SQL: several 1 MiB blocks, so the file holds several gzip members or zstd frames. */
async function seedSeveralBlocks(database: string): Promise<void> {
  await seedSampleData(database, 100);
  await sql(database, `create table bulk (id int primary key, body text); insert into bulk select g, repeat(md5(g::text), 20) || ' row ' || g from generate_series(1, 21000) g;`);
}

describe('compression: parallel gzip and zstd, end to end', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSeveralBlocks(workspace.database);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  for (const algorithm of ['gzip', 'zstd'] as const) {
    it(`${algorithm}: a multi-block backup restores identically with synapse-backup and with the stock tools`, async function () {
      const before = await snapshotDatabase(workspace.database);
      const result = await workspace.run(['backup', 'run', '--json'], {BACKUP_COMPRESSION: algorithm});
      expect(result.exitCode, result.stderr).to.equal(0);
      const {name} = result.json.result;
      expect(name).to.match(new RegExp(`\\.sql\\.${algorithm === 'gzip' ? 'gz' : 'zst'}\\.enc$`));
      const metadata = await workspace.readMetadata(name);
      expect(metadata.compression).to.deep.equal({algorithm, level: algorithm === 'gzip' ? 6 : 3});
      expect(metadata.sizes.plaintextBytes).to.be.greaterThan(8 * 1024 * 1024);

      // The stock tools read every member or frame (a reader that stopped after the first would lose data).
      const target = await createTestDatabase();
      try {
        const stock = await execa('bash', ['-o', 'pipefail', '-c', STOCK_RESTORE[algorithm]], {
          env: {ITER: '20000', FILE: path.join(workspace.backupDir, name), TARGET: target.url, BACKUP_ENCRYPTION_KEY: TEST_KEY},
          reject: false,
        });
        expect(stock.exitCode, stock.stderr).to.equal(0);
        expect(await snapshotDatabase(target.name)).to.deep.equal(before);
      } finally {
        await target.drop();
      }

      await sql(workspace.database, 'drop table bulk');
      const restored = await workspace.run(['backup', 'restore', name, '--yes']);
      expect(restored.exitCode, restored.stderr).to.equal(0);
      expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
    });
  }

  it('honours BACKUP_COMPRESSION_LEVEL and records it', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: '9', BACKUP_ENCRYPTION_KEY: undefined});
    expect(result.exitCode, result.stderr).to.equal(0);
    const {name} = result.json.result;
    expect(name).to.match(/\.sql\.zst$/);
    expect((await workspace.readMetadata(name)).compression).to.deep.equal({algorithm: 'zstd', level: 9});
    const stored = await readFile(path.join(workspace.backupDir, name));
    expect([...stored.subarray(0, 4)]).to.deep.equal([0x28, 0xb5, 0x2f, 0xfd]);
  });

  it('refuses a level outside the algorithm range before touching anything', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: '22'});
    expect(result.exitCode).to.equal(2);
    expect(result.json.error.code).to.equal('E_CONFIG');
    expect(result.json.error.message).to.match(/zstd levels run from 1 to 19/);
    expect(await workspace.backupFiles()).to.deep.equal([]);
  });

  it('lists zstd and gzip backups side by side', async function () {
    await workspace.backup({BACKUP_COMPRESSION: 'zstd'});
    await workspace.backup({BACKUP_COMPRESSION: 'gzip'}, 'daily');
    const result = await workspace.run(['backup', 'list', '--json']);
    expect(result.exitCode, result.stderr).to.equal(0);
    const listed = (result.json.result.backups as Array<{name: string; compression: string; health: string}>).map(({name, compression, health}) => ({suffix: name.slice(name.indexOf('.')), compression, health}));
    expect(listed.sort((a, b) => a.suffix.localeCompare(b.suffix))).to.deep.equal([
      {suffix: '.sql.gz.enc', compression: 'gzip', health: 'good'},
      {suffix: '.sql.zst.enc', compression: 'zstd', health: 'good'},
    ]);
  });
});
