import {expect} from 'chai';
import {createHash} from 'node:crypto';
import {readFile, stat} from 'node:fs/promises';
import path from 'node:path';

import {seedSampleData} from '../helpers/database.js';
import {TEST_KEY, createWorkspace, type Workspace} from '../helpers/workspace.js';

describe('backup run', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 200);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('writes an encrypted backup and its metadata, 0600 in a 0700 directory', async function () {
    const result = await workspace.run(['backup', 'run', '--backup-type', 'daily', '--json']);
    expect(result.exitCode, result.stderr).to.equal(0);
    const {name} = result.json.result;
    expect(name).to.match(/^backup_daily_\d{8}_\d{6}\.sql\.gz\.enc$/);
    expect(await workspace.backupFiles()).to.deep.equal([name, `${name}.meta.json`]);
    expect((await stat(workspace.backupDir)).mode & 0o777).to.equal(0o700);
    for (const file of await workspace.backupFiles()) expect((await stat(path.join(workspace.backupDir, file))).mode & 0o777, file).to.equal(0o600);

    const stored = await readFile(path.join(workspace.backupDir, name));
    expect(stored.subarray(0, 8).toString('latin1')).to.equal('Salted__');
    const metadata = await workspace.readMetadata(name);
    expect(metadata).to.include({formatVersion: 1, backupName: name, backupType: 'daily'});
    expect(metadata.database.name).to.equal(workspace.database);
    expect(metadata.database.serverVersion).to.match(/^\d+\.\d+/);
    expect(metadata.dump.version).to.match(/^\d+\.\d+/);
    expect(metadata.sizes.storedBytes).to.equal(stored.length);
    expect(metadata.sizes.plaintextBytes).to.be.greaterThan(stored.length);
    expect(metadata.checksums.stored).to.equal(createHash('sha256').update(stored).digest('hex'));
    expect(metadata.compression).to.deep.equal({algorithm: 'gzip', level: 6});
    expect(metadata.encryption).to.deep.include({cipher: 'aes-256-cbc', kdf: 'pbkdf2', kdfDigest: 'sha256', kdfIterations: 20000, container: 'openssl-salted'});
    expect(metadata.durationMs).to.be.a('number');
    expect(JSON.stringify(metadata)).not.to.include(TEST_KEY);
  });

  it('writes a plain .sql.gz and warns when no key is configured', async function () {
    const result = await workspace.run(['backup', 'run'], {BACKUP_ENCRYPTION_KEY: undefined});
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.stderr).to.match(/UNENCRYPTED/);
    const [name] = await workspace.backupFiles();
    expect(name).to.match(/^backup_hourly_\d{8}_\d{6}\.sql\.gz$/);
    const stored = await readFile(path.join(workspace.backupDir, name!));
    expect([...stored.subarray(0, 2)]).to.deep.equal([0x1f, 0x8b]);
    expect((await workspace.readMetadata(name!)).encryption).to.equal(null);
  });

  it('prints only the JSON envelope on stdout under --json, with warnings inside', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {BACKUP_ENCRYPTION_KEY: 'short'});
    expect(result.exitCode).to.equal(0);
    expect(result.json.status).to.equal(0);
    expect(result.json.warnings.join('\n')).to.match(/shorter than 32/);
    expect(result.stderr).to.equal('');
  });

  it('logs one timestamped line per stage event when not on a terminal', async function () {
    const result = await workspace.run(['backup', 'run']);
    expect(result.exitCode).to.equal(0);
    for (const stage of ['dump', 'compress', 'encrypt', 'checksum', 'store', 'metadata']) {
      expect(result.stderr).to.match(new RegExp(`^\\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z backup ${stage}: finished`, 'm'));
    }
    expect(result.stdout).to.match(/^Backup backup_hourly_\S+ written to /);
  });

  it('gives two backups of the same type distinct names and keeps both', async function () {
    const first = await workspace.backup();
    const second = await workspace.backup();
    expect(first).not.to.equal(second);
    expect(await workspace.backupFiles()).to.have.length(4);
  });

  it('lists the backups newest first in the documented table', async function () {
    const older = await workspace.backup({}, 'monthly');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const newer = await workspace.backup({}, 'hourly');
    const table = await workspace.run(['backup', 'list']);
    expect(table.exitCode).to.equal(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).to.equal(`Available backups of database '${workspace.database}':`);
    expect(lines[1]).to.match(/^Filename\s+Type\s+Timestamp\s+Size$/);
    expect(lines[3]).to.match(new RegExp(`^${newer.replaceAll('.', '\\.')}\\s+Hourly\\s+\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}\\s+\\d+\\.\\d{2} KB$`));
    expect(lines[4]).to.match(new RegExp(`^${older.replaceAll('.', '\\.')}\\s+Monthly`));
    // The Database column only where several databases are shown.
    const all = (await workspace.run(['backup', 'list', '--all-databases'])).stdout.split('\n');
    expect(all[1]).to.match(/^Filename\s+Database\s+Type\s+Timestamp\s+Size$/);
    expect(all[3]).to.match(new RegExp(`^${newer.replaceAll('.', '\\.')}\\s+${workspace.database}\\s+Hourly\\s`));
    const json = await workspace.run(['backup', 'list', '--json']);
    expect(json.json.result.backups.map((backup: {name: string}) => backup.name)).to.deep.equal([newer, older]);
    expect(json.json.result.backups[0]).to.include({health: 'good', type: 'hourly', encrypted: true});
  });
});
