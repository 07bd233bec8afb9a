import {expect} from 'chai';
import {createHash} from 'node:crypto';
import {mkdir, readFile, rm, truncate, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {gunzipSync, gzipSync} from 'node:zlib';

import {seedSampleData, sql} from '../../helpers/database.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {rewriteMetadata} from '../../helpers/metadata.js';
import {mountTmpfs, remountReadOnly, unmount} from '../../helpers/mounts.js';
import {startHttpReceiver, type HttpReceiver} from '../../helpers/receivers.js';
import {freePort} from '../../helpers/services.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

function checkStatuses(report: {checks: Array<{check: string; status: string}>}): Record<string, string> {
  return Object.fromEntries(report.checks.map((check) => [check.check, check.status]));
}

async function flipByte(file: string, offset: number): Promise<void> {
  const bytes = await readFile(file);
  bytes[offset]! ^= 0x01;
  await writeFile(file, bytes);
}

/**
 * Replaces an unencrypted backup's SQL by `change(sql)`, gzip-compressed again, and rewrites its
 * metadata so that every size and checksum matches the new file: a file whose checksums are
 * consistent, as a careful attacker or a buggy writer would leave it.
 */
async function rewriteConsistently(workspace: Workspace, name: string, change: (sql: string) => string, mangle: (gzip: Buffer) => Buffer = (gzip) => gzip): Promise<void> {
  const file = path.join(workspace.backupDir, name);
  const sql = Buffer.from(change(gunzipSync(await readFile(file)).toString('utf8')), 'utf8');
  const stored = mangle(gzipSync(sql));
  await writeFile(file, stored);
  await rewriteMetadata(
    workspace.backupDir,
    name,
    (metadata) => {
      metadata.sizes = {plaintextBytes: sql.length, storedBytes: stored.length};
      metadata.checksums = {...metadata.checksums, stored: sha256(stored), plaintext: sha256(sql)};
    },
    {sign: false},
  );
}

describe('backup verify', function () {
  describe('an encrypted backup', function () {
    let workspace: Workspace;
    let name: string;
    let receiver: HttpReceiver;

    beforeEach(async function () {
      workspace = await createWorkspace();
      await seedSampleData(workspace.database, 300);
      name = await workspace.backup();
      receiver = await startHttpReceiver();
    });

    afterEach(async function () {
      await receiver.close();
      await workspace.dispose();
    });

    const eventsOf = (receiver: HttpReceiver): string[] => receiver.requests.map((request) => JSON.parse(request.body).event as string);

    it('passes every check of an intact backup, touches no database, records the run and says so to the sinks', async function () {
      const result = await workspace.run(['backup', 'verify', name, '--json'], {NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_WEBHOOK_EVENTS: 'verify.*,alert.*'});
      expect(result.exitCode, result.stderr).to.equal(0);
      const [report] = result.json.result.backups;
      expect(report.verified).to.equal(true);
      expect(report.decoded).to.equal(true);
      expect(checkStatuses(report)).to.deep.equal({
        metadata: 'passed',
        authenticity: 'passed',
        size: 'passed',
        sha256: 'passed',
        key: 'passed',
        decode: 'passed',
        plaintext: 'passed',
        completion: 'passed',
      });
      expect(eventsOf(receiver)).to.deep.equal(['verify.succeeded']);
      const [entry] = await workspace.journalEntries();
      expect(entry).to.include({operation: 'verify', outcome: 'succeeded', backupName: name});
      expect(entry.authentication.mac).to.match(/^[0-9a-f]{64}$/);
      // The default --latest picks the same backup, and no database server is needed for it.
      const latest = await workspace.run(['backup', 'verify', '--json'], {DATABASE_URL: `postgresql://postgres@127.0.0.1:${await freePort()}/${workspace.database}`});
      expect(latest.exitCode, latest.stderr).to.equal(0);
      expect(latest.json.result.backups.map((backup: {backupName: string}) => backup.backupName)).to.deep.equal([name]);
    });

    it('fails on a flipped byte with exit 13, names the checksum, and sends verify.failed and alert.checksum_failed', async function () {
      await flipByte(path.join(workspace.backupDir, name), 200);
      const result = await workspace.run(['backup', 'verify', name, '--json'], {NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_WEBHOOK_EVENTS: 'verify.*,alert.*'});
      expect(result.exitCode).to.equal(13);
      expect(result.json.error.code).to.equal('E_INTEGRITY');
      expect(result.json.error.message).to.include(name).and.include('SHA-256');
      const [report] = result.json.error.details.backups;
      expect(checkStatuses(report)).to.include({size: 'passed', sha256: 'failed'});
      expect(eventsOf(receiver).sort()).to.deep.equal(['alert.checksum_failed', 'verify.failed']);
      const [entry] = await workspace.journalEntries();
      expect(entry).to.include({operation: 'verify', outcome: 'failed', failureCount: 1});
      expect(entry.error.code).to.equal('E_INTEGRITY');
    });

    it('measures the whole stored file even when decoding fails near its start', async function () {
      // Large enough for many reads: the decoder fails on the first ones, the checksum needs the rest.
      await sql(workspace.database, "insert into orders (customer_id, total, notes) select 1, g, md5(g::text) || repeat(md5((g * 7)::text), 20) from generate_series(1, 30000) g");
      const large = await workspace.backup({}, 'daily');
      const file = path.join(workspace.backupDir, large);
      expect((await readFile(file)).length).to.be.greaterThan(512 * 1024);
      await flipByte(file, 1000);
      const result = await workspace.run(['backup', 'verify', large, '--json']);
      expect(result.exitCode).to.equal(13);
      const report = result.json.error.details.backups[0];
      expect(checkStatuses(report)).to.include({size: 'passed', sha256: 'failed', decode: 'failed'});
    });

    it('fails on a truncated file, saying it is truncated', async function () {
      const file = path.join(workspace.backupDir, name);
      await truncate(file, (await readFile(file)).length - 100);
      const result = await workspace.run(['backup', 'verify', name, '--json']);
      expect(result.exitCode).to.equal(13);
      expect(result.json.error.message).to.include('(truncated)');
      expect(checkStatuses(result.json.error.details.backups[0])).to.include({size: 'failed'});
    });

    it('fails with exit 12 under a wrong key', async function () {
      const result = await workspace.run(['backup', 'verify', name, '--json'], {BACKUP_ENCRYPTION_KEY: 'another-key-0123456789-abcdefghijklmnopqrstuvwxyz'});
      expect(result.exitCode).to.equal(12);
      expect(result.json.error.code).to.equal('E_WRONG_KEY');
    });

    it('fails with exit 12 when the metadata is re-signed with the key but the file was encrypted with another', async function () {
      // A backup encrypted under another key, whose metadata a key holder signed: only decryption can tell.
      const other = await workspace.backup({BACKUP_ENCRYPTION_KEY: 'another-key-0123456789-abcdefghijklmnopqrstuvwxyz'});
      await rewriteMetadata(workspace.backupDir, other, () => {});
      const result = await workspace.run(['backup', 'verify', other, '--json']);
      expect(result.exitCode).to.equal(12);
      expect(checkStatuses(result.json.error.details.backups[0])).to.include({sha256: 'passed', key: 'failed'});
    });

    it('fails with exit 13 when the metadata file was deleted', async function () {
      await rm(path.join(workspace.backupDir, `${name}.meta.json`));
      const result = await workspace.run(['backup', 'verify', name, '--json']);
      expect(result.exitCode).to.equal(13);
      expect(result.json.error.code).to.equal('E_METADATA');
      expect(result.json.error.message).to.include('missing');
    });

    it('without a key checks the stored bytes, and lists what it skipped', async function () {
      const result = await workspace.run(['backup', 'verify', name, '--json'], {BACKUP_ENCRYPTION_KEY: undefined});
      expect(result.exitCode, result.stderr).to.equal(0);
      const [report] = result.json.result.backups;
      expect(report.decoded).to.equal(false);
      expect(checkStatuses(report)).to.deep.equal({
        metadata: 'passed',
        authenticity: 'skipped',
        size: 'passed',
        sha256: 'passed',
        key: 'skipped',
        decode: 'skipped',
        plaintext: 'skipped',
        completion: 'skipped',
      });
      const text = await workspace.run(['backup', 'verify', name], {BACKUP_ENCRYPTION_KEY: undefined});
      expect(text.stdout).to.include('stored bytes only').and.include('no key is configured');
    });

    it('with --all, reports every backup and fails naming the damaged one', async function () {
      const second = await workspace.backup({}, 'daily');
      await flipByte(path.join(workspace.backupDir, second), 300);
      const result = await workspace.run(['backup', 'verify', '--all', '--json']);
      expect(result.exitCode).to.equal(13);
      expect(result.json.error.code).to.equal('E_VERIFY_FAILED');
      expect(result.json.error.message).to.include(second).and.include('1 of 2');
      const verdicts = Object.fromEntries(result.json.error.details.backups.map((report: {backupName: string; verified: boolean}) => [report.backupName, report.verified]));
      expect(verdicts).to.deep.equal({[name]: true, [second]: false});
    });

    it('refuses an unencrypted backup where a key is configured, unless --allow-unencrypted', async function () {
      const plain = await workspace.backup({BACKUP_ENCRYPTION_KEY: undefined}, 'daily');
      const refused = await workspace.run(['backup', 'verify', plain, '--json']);
      expect(refused.exitCode).to.equal(14);
      expect(refused.json.error.code).to.equal('E_UNENCRYPTED');
      const allowed = await workspace.run(['backup', 'verify', plain, '--allow-unencrypted', '--json']);
      expect(allowed.exitCode, allowed.stderr).to.equal(0);
    });

    it('backup run --verify reads the new backup back before reporting success', async function () {
      const result = await workspace.run(['backup', 'run', '--verify', '--json'], {BACKUP_COMPRESSION: 'zstd'});
      expect(result.exitCode, result.stderr).to.equal(0);
      expect(result.json.result.verification).to.include({verified: true, decoded: true});
      expect(result.json.result.verification.backupName).to.equal(result.json.result.name);
    });
  });

  describe('an unencrypted backup whose checksums were made consistent', function () {
    let workspace: Workspace;
    let name: string;

    beforeEach(async function () {
      workspace = await createWorkspace({encrypted: false});
      await seedSampleData(workspace.database, 100);
      name = await workspace.backup();
    });

    afterEach(async function () {
      await workspace.dispose();
    });

    it('stops decoding a bomb at the size of SQL its metadata records, in verify and in restore', async function () {
      const file = path.join(workspace.backupDir, name);
      // 256 MiB of SQL comments in a file of a few hundred KB, recorded as 1,000 bytes of SQL.
      const stored = gzipSync(Buffer.alloc(256 * 1024 * 1024, '-'), {level: 9});
      await writeFile(file, stored);
      await rewriteMetadata(
        workspace.backupDir,
        name,
        (metadata) => {
          metadata.sizes = {plaintextBytes: 1000, storedBytes: stored.length};
          metadata.checksums = {...metadata.checksums, stored: sha256(stored)};
        },
        {sign: false},
      );
      const verified = await workspace.run(['backup', 'verify', name, '--json']);
      expect(verified.exitCode, verified.stdout).to.equal(13);
      const decode = verified.json.error.details.backups[0].checks.find((check: {check: string}) => check.check === 'decode');
      expect(decode.detail).to.include('more than the 1000 bytes of SQL recorded at backup time');
      const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
      expect(restored.exitCode, restored.stdout).to.equal(13);
      expect(restored.json.error.message).to.include('more than the 1000 bytes of SQL recorded at backup time');
    });

    it('records the roles it needs, but never password hashes, in the metadata of an unencrypted backup', async function () {
      const {globals} = await workspace.readMetadata(name);
      expect(globals.roles.map((role: {name: string}) => role.name)).to.include('postgres');
      expect(globals.passwords).to.equal('omitted-unencrypted');
      expect(globals).not.to.have.property('passwordHashes');
    });

    it('passes as it was written', async function () {
      await rewriteConsistently(workspace, name, (sql) => sql);
      const result = await workspace.run(['backup', 'verify', name, '--json']);
      expect(result.exitCode, result.stderr).to.equal(0);
    });

    it("is refused when the dump lacks pg_dump's completion line", async function () {
      await rewriteConsistently(workspace, name, (sql) => {
        const cut = sql.indexOf('-- PostgreSQL database dump complete');
        expect(cut).to.be.greaterThan(0);
        return sql.slice(0, cut);
      });
      const result = await workspace.run(['backup', 'verify', name, '--json']);
      expect(result.exitCode).to.equal(13);
      const report = result.json.error.details.backups[0];
      expect(checkStatuses(report)).to.include({sha256: 'passed', plaintext: 'passed', completion: 'failed'});
      expect(result.json.error.message).to.include('dump complete');
    });

    it('is refused when its gzip checksum is wrong, though the stored SHA-256 matches', async function () {
      // The gzip trailer's CRC-32 is the 8th to 5th byte from the end.
      await rewriteConsistently(workspace, name, (sql) => sql, (gzip) => {
        const bad = Buffer.from(gzip);
        bad[bad.length - 8]! ^= 0xff;
        return bad;
      });
      const result = await workspace.run(['backup', 'verify', name, '--json']);
      expect(result.exitCode).to.equal(13);
      const report = result.json.error.details.backups[0];
      expect(checkStatuses(report)).to.include({sha256: 'passed', decode: 'failed'});
      expect(report.failure.message).to.include('decompress');
    });
  });

  describe('on storage mounted read-only', function () {
    let workspace: Workspace;
    let mountPoint: string;

    beforeEach(async function () {
      workspace = await createWorkspace();
      await seedSampleData(workspace.database, 50);
      mountPoint = path.join(workspace.cwd, 'readonly');
      await mkdir(mountPoint);
      await mountTmpfs(mountPoint, {sizeBytes: 8 * 1024 * 1024});
    });

    afterEach(async function () {
      await unmount(mountPoint);
      await workspace.dispose();
    });

    it('verifies and test-restores there (the disaster-recovery steps), warning only that nothing could be recorded', async function () {
      const name = await workspace.backup({BACKUP_DIR: mountPoint});
      await remountReadOnly(mountPoint, true);
      try {
        const verified = await workspace.run(['backup', 'verify', '--latest', '--json'], {BACKUP_DIR: mountPoint});
        expect(verified.exitCode, verified.stdout + verified.stderr).to.equal(0);
        expect(verified.json.result.backups[0].backupName).to.equal(name);
        expect(verified.json.warnings.join('\n')).to.include('unable to record');
        const tested = await workspace.run(['backup', 'test-restore', '--latest', '--json'], {BACKUP_DIR: mountPoint});
        expect(tested.exitCode, tested.stdout + tested.stderr).to.equal(0);
        expect(tested.json.result.comparison.status).to.equal('matched');
      } finally {
        await remountReadOnly(mountPoint, false);
      }
    });
  });

  describe('backup run', function () {
    let workspace: Workspace;

    beforeEach(async function () {
      workspace = await createWorkspace({encrypted: false});
      await seedSampleData(workspace.database, 100);
    });

    afterEach(async function () {
      await workspace.dispose();
    });

    it("refuses to publish a dump without pg_dump's completion line, though pg_dump exited 0", async function () {
      const earlier = await workspace.backup();
      const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', "pg_dump \"$@\" | grep -v 'dump complete'")});
      const result = await workspace.run(['backup', 'run', '--json'], {PG_BIN_DIR: binDir});
      expect(result.exitCode).to.equal(5);
      expect(result.json.error.code).to.equal('E_DUMP_FAILED');
      expect(result.json.error.message).to.include('dump complete').and.include('nothing was published');
      expect(await workspace.backupFiles()).to.deep.equal([earlier, `${earlier}.meta.json`]);
      const [entry] = await workspace.journalEntries();
      expect(entry).to.include({operation: 'backup', outcome: 'failed'});
    });
  });
});
