import {expect} from 'chai';
import {execa} from 'execa';
import {createHash} from 'node:crypto';
import {existsSync} from 'node:fs';
import {copyFile, lstat, mkdir, readFile, rename, rm, stat, symlink, truncate, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {gzipSync, gunzipSync} from 'node:zlib';

import {databaseNames, seedSampleData, snapshotDatabase, sql} from '../../helpers/database.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {rewriteMetadata} from '../../helpers/metadata.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

/** Older backups as if made earlier: same file, metadata signed for the new name. */
async function cloneAs(workspace: Workspace, source: string, name: string, options: {sign?: boolean} = {}): Promise<void> {
  await copyFile(path.join(workspace.backupDir, source), path.join(workspace.backupDir, name));
  await rewriteMetadata(workspace.backupDir, source, () => {}, {as: name, ...options});
}

describe('hostile storage content', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 50);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  describe('cleanup never trades an intact backup for a damaged newer one', function () {
    const older = 'backup_hourly_20260601_100000.sql.gz.enc';
    const newer = 'backup_hourly_20260601_110000.sql.gz.enc';

    beforeEach(async function () {
      const made = await workspace.backup();
      await cloneAs(workspace, made, older);
      await cloneAs(workspace, made, newer);
      await rm(path.join(workspace.backupDir, made));
      await rm(path.join(workspace.backupDir, `${made}.meta.json`));
    });

    const damages: Array<[string, (file: string) => Promise<void>]> = [
      ['truncated', (file) => truncate(file, 100)],
      [
        'with a flipped byte',
        async (file) => {
          const bytes = await readFile(file);
          bytes[200] = bytes[200]! ^ 0xff;
          await writeFile(file, bytes);
        },
      ],
    ];
    for (const [label, damage] of damages) {
      it(`keeps the older backup when the newer one is ${label}, and says so`, async function () {
        await damage(path.join(workspace.backupDir, newer));
        const listed = await workspace.run(['backup', 'list', '--json']);
        const cleanup = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
        expect(cleanup.exitCode, cleanup.stdout).to.equal(0);
        expect(cleanup.json.result.removedKeys).to.deep.equal([]);
        expect(await workspace.backupFiles()).to.include.members([older, newer]);
        const restored = await workspace.run(['backup', 'restore', older, '--yes', '--json']);
        expect(restored.exitCode, restored.stdout).to.equal(0);
        if (label === 'truncated') {
          // The size alone gives it away: list does not call it good.
          expect(listed.json.result.backups.find((backup: {name: string}) => backup.name === newer)).to.include({health: 'damaged'});
        } else {
          expect(cleanup.json.result.verified).to.deep.include({name: newer, status: 'damaged', problem: cleanup.json.result.verified[0].problem});
          expect(cleanup.json.warnings.join('\n')).to.match(/is damaged: SHA-256/);
        }
      });
    }

    it('keeps the older backup when the newer one\'s checksum was changed in its metadata', async function () {
      // Without the key, the attacker's edit breaks the MAC.
      await rewriteMetadata(workspace.backupDir, newer, (metadata) => (metadata.checksums.stored = 'f'.repeat(64)), {sign: false});
      const cleanup = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
      expect(cleanup.json.result.removedKeys).to.deep.equal([]);
      // With the key (or on a storage without one), the read-back catches it.
      await rewriteMetadata(workspace.backupDir, newer, (metadata) => (metadata.checksums.stored = 'f'.repeat(64)));
      const again = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
      expect(again.json.result.removedKeys).to.deep.equal([]);
      expect(again.json.result.verified).to.have.length(1);
    });

    it('removes the older backup once the newer one has been read back intact, and reads it only once', async function () {
      const first = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
      expect(first.json.result.removedKeys).to.deep.equal([`${older}.meta.json`, older]);
      expect(first.json.result.verified).to.deep.equal([{name: newer, status: 'intact'}]);
      await cloneAs(workspace, newer, older);
      const second = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
      expect(second.json.result.verified).to.deep.equal([]);
      expect(second.json.result.removedKeys).to.include(older);
    });

    it('does not believe a verification record for a file changed since, nor one forged without the key', async function () {
      await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '5'});
      const forced = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '0'});
      expect(forced.json.result.verified).to.deep.equal([{name: newer, status: 'intact'}]);
      // Recreate the older one, damage the newer one after its verification: the record is stale by mtime/size.
      await cloneAs(workspace, newer, older);
      const file = path.join(workspace.backupDir, newer);
      const bytes = await readFile(file);
      bytes[200] = bytes[200]! ^ 0xff;
      await writeFile(file, bytes);
      const afterChange = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
      expect(afterChange.json.result.removedKeys).to.deep.equal([]);
      // A record forged without the key for the damaged file is not believed either.
      const record = JSON.parse(await readFile(`${file}.verified.json`, 'utf8'));
      const stat = (await import('node:fs/promises')).stat;
      const info = await stat(file);
      await writeFile(`${file}.verified.json`, JSON.stringify({...record, fileModifiedAt: info.mtime.toISOString(), authentication: {...record.authentication, mac: '0'.repeat(64)}}));
      const forged = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
      expect(forged.json.result.removedKeys).to.deep.equal([]);
      expect(await workspace.backupFiles()).to.include(older);
    });
  });

  describe('a planted backup', function () {
    /** An unencrypted backup whose dump carries meta-commands, with matching metadata and no key. */
    async function plant(name: string, extraLines: string[], options: {encryptedName?: boolean} = {}): Promise<string> {
      const plain = await createWorkspace({encrypted: false});
      try {
        await sql(plain.database, 'create table planted (id int); insert into planted values (1)');
        const made = await plain.backup();
        const dump = gunzipSync(await readFile(path.join(plain.backupDir, made))).toString('utf8');
        // At the very top, before (and without) pg_dump's own \restrict line, as an attacker would.
        const evil = `${extraLines.join('\n')}\n${dump.replaceAll(/^\\(un)?restrict .*$/gm, '')}`;
        const stored = gzipSync(Buffer.from(evil));
        const metadata = JSON.parse(await readFile(path.join(plain.backupDir, `${made}.meta.json`), 'utf8'));
        const planted = options.encryptedName ? `${name}.enc` : name;
        Object.assign(metadata, {backupName: planted, database: {...metadata.database, name: workspace.database}});
        metadata.sizes = {plaintextBytes: Buffer.byteLength(evil), storedBytes: stored.length};
        metadata.checksums = {algorithm: 'sha256', stored: createHash('sha256').update(stored).digest('hex'), plaintext: createHash('sha256').update(evil).digest('hex')};
        await mkdir(workspace.backupDir, {recursive: true});
        await writeFile(path.join(workspace.backupDir, planted), stored);
        await writeFile(path.join(workspace.backupDir, `${planted}.meta.json`), JSON.stringify(metadata));
        return planted;
      } finally {
        await plain.dispose();
      }
    }

    it('is refused when unencrypted in a storage with a key, and never runs its meta-commands even when allowed', async function () {
      await workspace.backup();
      const before = await snapshotDatabase(workspace.database);
      const marker = path.join(workspace.cwd, 'pwned');
      const table = `planted_${workspace.database}`;
      const planted = await plant('backup_hourly_20990101_000000.sql.gz', [`\\! touch ${marker}`, '\\connect postgres', `create table ${table} (id int);`]);

      const refused = await workspace.run(['backup', 'restore', planted, '--yes', '--json']);
      expect(refused.exitCode).to.equal(14);
      expect(refused.json.error.code).to.equal('E_UNENCRYPTED');
      expect(refused.json.error.suggestion).to.include('--allow-unencrypted');

      const allowed = await workspace.run(['backup', 'restore', planted, '--yes', '--allow-unencrypted', '--json']);
      expect(allowed.exitCode).to.equal(6);
      expect(allowed.json.error.message).to.include('it contains a psql meta-command');
      expect(allowed.json.error.suggestion).to.include('planted');
      expect(existsSync(marker), 'the shell command ran').to.equal(false);
      expect((await sql('postgres', `select count(*)::int as n from pg_class where relname = '${table}'`)).rows[0].n, 'the dump reached another database').to.equal(0);
      expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
      expect(await databaseNames(`${workspace.database}_`)).to.deep.equal([]);
    });

    it('cannot escape psql\'s restriction with pg_dump\'s own \\unrestrict line', async function () {
      const before = await snapshotDatabase(workspace.database);
      const marker = path.join(workspace.cwd, 'pwned');
      const planted = await plant('backup_hourly_20990101_000000.sql.gz', ['\\unrestrict abc123', `\\! touch ${marker}`]);
      const result = await workspace.run(['backup', 'restore', planted, '--yes', '--json'], {BACKUP_ENCRYPTION_KEY: undefined});
      expect(result.exitCode).to.equal(6);
      expect(existsSync(marker)).to.equal(false);
      expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
    });

    it('is not handed to a psql too old to refuse meta-commands', async function () {
      const made = await workspace.backup();
      const bin = await fakeBinDir(path.join(workspace.cwd, 'old-psql'), {psql: versionAware('psql', 'exec psql "$@"', '15.13')});
      const result = await workspace.run(['backup', 'restore', made, '--yes', '--json'], {PG_BIN_DIR: bin});
      expect(result.exitCode).to.equal(4);
      expect(result.json.error.code).to.equal('E_TOOL_VERSION');
      expect(result.json.error.message).to.include('psql 15.13 has no \\restrict');
      expect(await databaseNames(`${workspace.database}_`)).to.deep.equal([]);
    });

    it('whose name says encrypted but whose metadata does not is refused always', async function () {
      const planted = await plant('backup_hourly_20990101_000000.sql.gz', [], {encryptedName: true});
      const result = await workspace.run(['backup', 'restore', planted, '--yes', '--allow-unencrypted', '--json']);
      expect(result.exitCode).to.equal(13);
      expect(result.json.error.message).to.include('the file name says encrypted, but the metadata says it is not');
    });

    it('with metadata forged without the key is never restored, listed as good or counted by cleanup', async function () {
      const made = await workspace.backup();
      const forgedName = 'backup_hourly_20990101_000000.sql.gz.enc';
      await copyFile(path.join(workspace.backupDir, made), path.join(workspace.backupDir, forgedName));
      await rewriteMetadata(workspace.backupDir, made, () => {}, {as: forgedName, signWith: 'an-attacker-key-that-is-not-ours-0123456789'});
      const restore = await workspace.run(['backup', 'restore', forgedName, '--yes', '--json']);
      expect(restore.exitCode).to.equal(14);
      expect(restore.json.error.code).to.equal('E_NOT_AUTHENTIC');
      const listed = await workspace.run(['backup', 'list', '--json']);
      const entry = listed.json.result.backups.find((backup: {name: string}) => backup.name === forgedName);
      expect(entry).to.include({health: 'forged'});
      expect(entry.database, 'a forged document is not believed about its database').to.equal(undefined);
      const cleanup = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
      expect(cleanup.json.result.removedKeys).to.deep.equal([]);
    });

    it('refuses a backup whose MAC was stripped (exit 14), restores it only with --allow-unsigned-metadata, and never counts it as good', async function () {
      const made = await workspace.backup();
      await rewriteMetadata(workspace.backupDir, made, () => {}, {sign: false});
      const refused = await workspace.run(['backup', 'restore', made, '--yes', '--json']);
      expect(refused.exitCode, refused.stdout).to.equal(14);
      expect(refused.json.error.code).to.equal('E_NOT_AUTHENTIC');
      const verified = await workspace.run(['backup', 'verify', made, '--json']);
      expect(verified.exitCode, verified.stdout).to.equal(14);
      const restored = await workspace.run(['backup', 'restore', made, '--yes', '--allow-unsigned-metadata', '--json']);
      expect(restored.exitCode, restored.stdout).to.equal(0);
      expect(restored.json.warnings.join('\n')).to.match(/has no MAC/);
      const listed = await workspace.run(['backup', 'list', '--json']);
      expect(listed.json.result.backups[0]).to.include({name: made, health: 'unsigned'});
    });
  });

  describe('several databases in one storage', function () {
    it('keeps each database\'s backups apart in cleanup and list', async function () {
      const other = await createWorkspace();
      try {
        const mine = await workspace.backup();
        await new Promise((resolve) => setTimeout(resolve, 1100));
        const theirs = await other.backup({BACKUP_DIR: workspace.backupDir});
        const cleanup = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
        expect(cleanup.json.result.removedKeys).to.deep.equal([]);
        expect(await workspace.backupFiles()).to.include.members([mine, theirs]);
        const listed = await workspace.run(['backup', 'list', '--json']);
        expect(listed.json.result.backups.map((backup: {name: string}) => backup.name)).to.deep.equal([mine]);
        const all = await workspace.run(['backup', 'list', '--all-databases']);
        expect(all.stdout).to.include(theirs).and.include(other.database).and.include(mine);
      } finally {
        await other.dispose();
      }
    });

    it("cleans up only the configured database's backups; --all-databases applies the counts to every database and says so", async function () {
      const other = await createWorkspace();
      try {
        const theirs = [await other.backup({BACKUP_DIR: workspace.backupDir}, 'daily')];
        await new Promise((resolve) => setTimeout(resolve, 1100));
        theirs.push(await other.backup({BACKUP_DIR: workspace.backupDir}, 'daily'));
        await workspace.backup({}, 'daily');
        // A job for our database that keeps no daily backups but the newest must not touch theirs.
        const mine = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_DAILY: '0'});
        expect(mine.exitCode, mine.stdout).to.equal(0);
        expect(await workspace.backupFiles()).to.include.members(theirs);
        expect(mine.json.result.decisions.filter((decision: {database: string}) => decision.database === other.database).map((decision: {action: string}) => decision.action)).to.deep.equal(['keep', 'keep']);
        const everywhere = await workspace.run(['backup', 'cleanup', '--all-databases', '--json'], {BACKUP_RETENTION_DAILY: '0'});
        expect(everywhere.exitCode, everywhere.stdout).to.equal(0);
        expect(everywhere.json.warnings.join('\n')).to.include('--all-databases').and.include('apply to every database');
        expect(await workspace.backupFiles()).not.to.include(theirs[0]);
        expect(await workspace.backupFiles()).to.include(theirs[1]);
      } finally {
        await other.dispose();
      }
    });

    it('refuses to restore a backup of another database unless asked to, and says which is which', async function () {
      const other = await createWorkspace();
      try {
        await seedSampleData(other.database, 10);
        const theirs = await other.backup({BACKUP_DIR: workspace.backupDir});
        const before = await snapshotDatabase(workspace.database);
        const refused = await workspace.run(['backup', 'restore', theirs, '--yes', '--json']);
        expect(refused.exitCode).to.equal(2);
        expect(refused.json.error.code).to.equal('E_OTHER_DATABASE');
        expect(refused.json.error.message).to.include(`it is a backup of database '${other.database}'`);
        expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
        const allowed = await workspace.run(['backup', 'restore', theirs, '--yes', '--allow-other-database', '--json']);
        expect(allowed.exitCode, allowed.stdout).to.equal(0);
        expect(allowed.json.result).to.include({sourceDatabase: other.database, database: workspace.database});
        expect(await snapshotDatabase(workspace.database)).to.deep.equal(await snapshotDatabase(other.database));
      } finally {
        await other.dispose();
      }
    });
  });

  describe('symbolic links planted under backup names', function () {
    it('are no backups: not listed, not restored, not deleted, and nothing about the target is revealed', async function () {
      const good = await workspace.backup();
      const link = 'backup_hourly_20990101_000000.sql.gz.enc';
      const target = '/etc/shadow';
      await symlink(target, path.join(workspace.backupDir, link));
      await rewriteMetadata(workspace.backupDir, good, () => {}, {as: link});
      const targetHash = createHash('sha256').update(await readFile(target)).digest('hex');
      const targetSize = (await stat(target)).size;

      const restore = await workspace.run(['backup', 'restore', link, '--yes', '--json']);
      expect(restore.exitCode).to.equal(10);
      expect(restore.json.error.code).to.equal('E_BACKUP_NOT_FOUND');
      const listed = await workspace.run(['backup', 'list', '--json']);
      expect(listed.json.result.backups.find((backup: {name: string}) => backup.name === link)).to.include({health: 'data-missing'});
      const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
      // Only the metadata that has no backup file beside it goes; the link stays, as any file we did not write.
      expect(cleanup.json.result.removedKeys).to.deep.equal([`${link}.meta.json`]);
      expect((await lstat(path.join(workspace.backupDir, link))).isSymbolicLink()).to.equal(true);
      const outputs = [restore, listed, cleanup];
      for (const output of outputs) expect(output.stdout).not.to.include(targetHash);
      // The size is a short number that a duration or a timestamp may contain by chance: look for it where a size is said.
      for (const output of outputs) expect(sizesSaidIn(output.json)).not.to.include(targetSize);
    });

    it('as metadata count as missing metadata in list and restore alike', async function () {
      const good = await workspace.backup();
      const elsewhere = path.join(workspace.cwd, 'metadata.json');
      await rename(path.join(workspace.backupDir, `${good}.meta.json`), elsewhere);
      await symlink(elsewhere, path.join(workspace.backupDir, `${good}.meta.json`));
      const listed = await workspace.run(['backup', 'list', '--json']);
      expect(listed.json.result.backups[0]).to.include({name: good, health: 'metadata-missing'});
      const restore = await workspace.run(['backup', 'restore', good, '--yes', '--json']);
      expect(restore.exitCode).to.equal(13);
      expect(restore.json.error.code).to.equal('E_METADATA');
    });
  });

  describe('clear errors for bad entries', function () {
    it('lists every other backup when one metadata document lacks a field, and names the field', async function () {
      const good = await workspace.backup();
      const bad = 'backup_hourly_20260101_000000.sql.gz.enc';
      await cloneAs(workspace, good, bad);
      await rewriteMetadata(workspace.backupDir, bad, (metadata) => delete metadata.database);
      const listed = await workspace.run(['backup', 'list', '--json']);
      expect(listed.exitCode, listed.stdout).to.equal(0);
      const entry = listed.json.result.backups.find((backup: {name: string}) => backup.name === bad);
      expect(entry).to.include({health: 'metadata-unreadable'});
      expect(entry.problem).to.include('database is missing');
      expect(listed.json.result.backups.find((backup: {name: string}) => backup.name === good)).to.include({health: 'good'});
    });

    it('calls a 100 MB metadata document a metadata problem (13), not a storage problem', async function () {
      const name = await workspace.backup();
      await writeFile(path.join(workspace.backupDir, `${name}.meta.json`), Buffer.alloc(100 * 1024 * 1024, 0x20));
      const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
      expect(result.exitCode).to.equal(13);
      expect(result.json.error.code).to.equal('E_METADATA');
    });

    it('removes a verification record whose backup is gone, and nothing else', async function () {
      const name = await workspace.backup();
      const orphan = 'backup_hourly_20200101_000000.sql.gz.enc.verified.json';
      await writeFile(path.join(workspace.backupDir, orphan), '{}');
      const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
      expect(cleanup.json.result.removedKeys).to.deep.equal([orphan]);
      expect(await workspace.backupFiles()).to.deep.equal([name, `${name}.meta.json`]);
    });

    it('leaves a .partial name without a random token alone', async function () {
      const name = await workspace.backup();
      const untokened = `${name}.partial`;
      await writeFile(path.join(workspace.backupDir, untokened), 'not ours');
      const cleanup = await workspace.run(['backup', 'cleanup', '--json']);
      expect(cleanup.json.result.removedKeys).to.deep.equal([]);
      expect(await workspace.backupFiles()).to.include(untokened);
    });
  });

  it('escapes the DROP DATABASE hint for a name with a double quote', async function () {
    const odd = `${workspace.database}_q"uote`;
    await sql('postgres', `create database "${odd.replaceAll('"', '""')}"`);
    try {
      await seedSampleData(odd, 5);
      const url = `${workspace.databaseUrl.replace(/\/[^/]+$/, '')}/${encodeURIComponent(odd)}`;
      await workspace.backup({DATABASE_URL: url});
      const name = (await workspace.run(['backup', 'list', '--json'], {DATABASE_URL: url})).json.result.backups[0].name;
      const result = await workspace.run(['backup', 'restore', name, '--yes'], {DATABASE_URL: url});
      expect(result.exitCode, result.stderr).to.equal(0);
      const previous = (await databaseNames(`${workspace.database}_q`)).find((db) => db.includes('pre_restore'))!;
      expect(result.stdout).to.include(`DROP DATABASE "${previous.replaceAll('"', '""')}";`);
      await execa('psql', ['-X', '-q', '-d', workspace.databaseUrl.replace(/\/[^/]+$/, '/postgres'), '-c', `DROP DATABASE "${previous.replaceAll('"', '""')}";`]);
    } finally {
      for (const db of await databaseNames(`${workspace.database}_q`)) await sql('postgres', `drop database if exists "${db.replaceAll('"', '""')}" with (force)`);
    }
  });
});

/** Every number a JSON document gives under a key that names a size. */
function sizesSaidIn(document: unknown): number[] {
  if (Array.isArray(document)) return document.flatMap((item) => sizesSaidIn(item));
  if (document === null || typeof document !== 'object') return [];
  return Object.entries(document).flatMap(([key, value]) =>
    typeof value === 'number' && /size|bytes/i.test(key) ? [value] : sizesSaidIn(value),
  );
}
