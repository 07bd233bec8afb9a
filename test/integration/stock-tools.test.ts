import {expect} from 'chai';
import {execa} from 'execa';
import {createHash} from 'node:crypto';
import {readFile, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {createTestDatabase, seedSampleData, snapshotDatabase} from '../helpers/database.js';
import {TEST_KEY, createWorkspace, type Workspace} from '../helpers/workspace.js';
import {rewriteMetadata} from '../helpers/metadata.js';

/** The emergency recipe from the README, with nothing but openssl, gunzip and psql. */
const STOCK_RESTORE = 'openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter "$ITER" -pass env:BACKUP_ENCRYPTION_KEY -in "$FILE" | gunzip | psql -X -q -v ON_ERROR_STOP=1 "$TARGET"';

describe('stock-tools compatibility (real openssl)', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 200);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('restores a backup made with the default 600000 iterations using only openssl | gunzip | psql', async function () {
    const name = await workspace.backup({BACKUP_ENCRYPTION_ITERATIONS: undefined});
    const metadata = await workspace.readMetadata(name);
    expect(metadata.encryption.kdfIterations).to.equal(600000);
    const target = await createTestDatabase();
    try {
      const result = await execa('bash', ['-o', 'pipefail', '-c', STOCK_RESTORE], {
        env: {ITER: '600000', FILE: path.join(workspace.backupDir, name), TARGET: target.url, BACKUP_ENCRYPTION_KEY: TEST_KEY},
        reject: false,
      });
      expect(result.exitCode, result.stderr).to.equal(0);
      expect(await snapshotDatabase(target.name)).to.deep.equal(await snapshotDatabase(workspace.database));
    } finally {
      await target.drop();
    }
  });

  it('reads the first line of a key file, as `openssl enc -pass file:` does', async function () {
    const keyFile = path.join(workspace.cwd, 'key');
    await writeFile(keyFile, `${TEST_KEY}\na comment on the second line\n`, {mode: 0o600});
    const name = await workspace.backup({BACKUP_ENCRYPTION_KEY: undefined, BACKUP_ENCRYPTION_KEY_FILE: keyFile});
    const target = await createTestDatabase();
    try {
      const recipe = STOCK_RESTORE.replace('-pass env:BACKUP_ENCRYPTION_KEY', '-pass "file:$KEY_FILE"');
      const result = await execa('bash', ['-o', 'pipefail', '-c', recipe], {env: {ITER: '20000', FILE: path.join(workspace.backupDir, name), TARGET: target.url, KEY_FILE: keyFile}, reject: false});
      expect(result.exitCode, result.stderr).to.equal(0);
      expect(await snapshotDatabase(target.name)).to.deep.equal(await snapshotDatabase(workspace.database));
    } finally {
      await target.drop();
    }
  });

  it('restores, with synapse-backup, a file that openssl encrypted', async function () {
    const name = await workspace.backup();
    const original = await snapshotDatabase(workspace.database);
    const file = path.join(workspace.backupDir, name);
    const compressed = await execa('bash', ['-o', 'pipefail', '-c', 'openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter 20000 -pass env:BACKUP_ENCRYPTION_KEY -in "$FILE"'], {
      env: {FILE: file, BACKUP_ENCRYPTION_KEY: TEST_KEY},
      encoding: 'buffer',
    // Binary output: execa would otherwise drop a last byte that happens to be a newline (1 time in 256).
    stripFinalNewline: false,
    });
    const reencrypted = await execa('openssl', ['enc', '-e', '-aes-256-cbc', '-pbkdf2', '-md', 'sha256', '-iter', '20000', '-salt', '-pass', 'env:BACKUP_ENCRYPTION_KEY'], {
      input: compressed.stdout as unknown as Buffer,
      encoding: 'buffer',
    // Binary output: execa would otherwise drop a last byte that happens to be a newline (1 time in 256).
    stripFinalNewline: false,
      env: {BACKUP_ENCRYPTION_KEY: TEST_KEY},
    });
    const bytes = reencrypted.stdout as unknown as Buffer;
    await writeFile(file, bytes);
    // The holder of the key rewrites the metadata for the new file, and signs it again.
    const metadata = await rewriteMetadata(workspace.backupDir, name, (document) => {
      document.sizes.storedBytes = bytes.length;
      document.checksums.stored = createHash('sha256').update(bytes).digest('hex');
    });
    await execa('psql', ['-X', '-q', '-d', workspace.databaseUrl, '-c', 'drop table orders cascade']);

    const result = await workspace.run(['backup', 'restore', name, '--yes']);
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(original);
    expect(createHash('sha256').update(await readFile(file)).digest('hex')).to.equal(metadata.checksums.stored);
  });
});
