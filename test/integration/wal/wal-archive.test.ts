import {expect} from 'chai';
import {execa} from 'execa';
import {randomBytes} from 'node:crypto';
import {chmod, chown, copyFile, mkdir, readdir, readFile, readlink, rename, rm, stat, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT, runCli, spawnCli, type CliResult} from '../../helpers/cli.js';
import {PG_BIN, postgresUser, startThrowawayCluster, waitFor, type ThrowawayCluster} from '../../helpers/cluster.js';
import {startS3Server, type S3Endpoint} from '../../helpers/s3fs-mount.js';
import {makeTempDir} from '../../helpers/temp.js';
import {plantedWalFile, walFile, walFileNames} from '../../helpers/storage.js';
import {opensslAesCbc} from '../../../plugins/encryption-aes/src/openssl-aes-cbc.js';
import {LocalDirectoryStorage} from '../../../plugins/storage-local/src/local-directory-storage.js';
import {BLOCK_SIZE, BlockPool} from '../../../src/core/pipeline/index.js';
import {Secret} from '../../../src/core/secrets/index.js';
import {WalKeys, encodeWalFile, sealWalFile, storeWalFile, walObjectKey} from '../../../src/core/wal/index.js';

const STALLING = path.join(PROJECT_ROOT, 'test', 'fixtures', 'plugins', 'stalling-storage');
const LAUNCHER = path.join(PROJECT_ROOT, 'bin', 'synapse-backup');
const KEY = 'wal-test-key-0123456789-abcdefghijklmnopqrstuvwxyz';

async function walObjects(directory: string): Promise<string[]> {
  try {
    return (await walFileNames(directory)).filter((name) => name !== 'archive.json');
  } catch {
    return [];
  }
}

/**
 * The WAL archive against a real PostgreSQL whose archive_command is `wal push`, run by the server
 * as the postgres user with the settings from an env file, as the README gives it; the other cases
 * push and fetch real segments of that cluster directly.
 */
describe('WAL archiving: wal push and wal fetch', function () {
  this.timeout(240_000);
  let cluster: ThrowawayCluster;
  let home: {path: string; remove: () => Promise<void>};
  let archive: string;
  let env: Record<string, string>;
  let lastOfWorkload: string;

  before(async function () {
    home = await makeTempDir('synapse-wal-');
    const {uid, gid} = postgresUser();
    await chown(home.path, uid, gid);
    archive = path.join(home.path, 'archive');
    await mkdir(archive);
    await chown(archive, uid, gid);
    const keyFile = path.join(home.path, 'key');
    await writeFile(keyFile, `${KEY}\n`, {mode: 0o600});
    await chown(keyFile, uid, gid);
    const envFile = path.join(home.path, 'env');
    await writeFile(envFile, `BACKUP_DIR=${archive}\nBACKUP_ENCRYPTION_KEY_FILE=${keyFile}\nBACKUP_ENCRYPTION_ITERATIONS=20000\nBACKUP_COMPRESSION=zstd\n`);
    env = {BACKUP_DIR: archive, BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_ENCRYPTION_ITERATIONS: '20000', BACKUP_COMPRESSION: 'zstd'};
    cluster = await startThrowawayCluster({
      settings: ['archive_mode = on', `archive_command = 'set -a && . ${envFile} && exec ${LAUNCHER} wal push %p'`, 'wal_keep_size = 1GB', 'max_wal_size = 1GB'],
    });
    // The workload every case works with: the segments it wrote, archived by the server itself.
    await execa(path.join(PG_BIN, 'pgbench'), ['-i', '-s', '3', '-q', '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', 'postgres']);
    await execa(path.join(PG_BIN, 'pgbench'), ['-T', '3', '-c', '2', '-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', 'postgres']);
    lastOfWorkload = await switchAndWait();
  });

  after(async function () {
    await cluster?.stop();
    await home?.remove();
  });

  function wal(args: string[], extra: Record<string, string | undefined> = {}, cwd = cluster.data): Promise<CliResult> {
    return runCli(['wal', ...args], {cwd, env: {...env, ...extra}});
  }

  /** A real segment of the cluster, copied into a scratch pg_wal of its own, to push from there. */
  async function segmentCopy(name: string, change?: (bytes: Buffer) => void): Promise<string> {
    const directory = path.join((await makeTempDir('synapse-walcopy-')).path, 'pg_wal');
    await mkdir(directory);
    const file = path.join(directory, name);
    const bytes = await readFile(path.join(cluster.data, 'pg_wal', name));
    change?.(bytes);
    await writeFile(file, bytes);
    return file;
  }

  /** Stores a segment at a location as an earlier version stored every file: tagged by name, size and SHA-256 (format 1), which this one still writes for a file too large to hold in memory. */
  async function storeFormatOneCopy(location: string, segment: string): Promise<string> {
    const codec = {compression: {algorithm: 'zstd', level: 3}, encryption: opensslAesCbc, keys: new WalKeys({key: new Secret(KEY), provider: 'aes-256-cbc', iterations: 20000})} as const;
    const storage = await LocalDirectoryStorage.open(location, 'read-write', {create: true});
    const sealed = await sealWalFile(await encodeWalFile(path.join(cluster.data, 'pg_wal', segment), codec.compression, {pool: new BlockPool(BLOCK_SIZE), inMemoryLimit: 0}), codec);
    expect(sealed.tag.format).to.equal(1);
    const key = walObjectKey(segment, sealed.tag, 'zstd', true);
    await storeWalFile(storage, key, sealed, codec);
    return path.basename(key);
  }

  async function archivedSegments(): Promise<string[]> {
    return (await readdir(path.join(cluster.data, 'pg_wal', 'archive_status'))).filter((name) => name.endsWith('.done')).map((name) => name.replace(/\.done$/, '')).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort();
  }

  async function switchAndWait(): Promise<string> {
    const last = await cluster.psql('select pg_walfile_name(pg_current_wal_insert_lsn())');
    await cluster.psql('select pg_switch_wal()');
    await waitFor(async () => (await cluster.psql('select last_archived_wal from pg_stat_archiver')) >= last, `segment ${last} to be archived`);
    return last;
  }

  it('archives a pgbench workload: every segment arrives, verifies, and is fetched back byte for byte', async function () {
    const stats = (await cluster.psql('select archived_count, failed_count from pg_stat_archiver')).split('|').map(Number);
    expect(stats[1], 'failed archive_command runs').to.equal(0);
    const segments = await archivedSegments();
    expect(segments.length).to.be.at.least(3);
    expect(segments).to.include(lastOfWorkload);
    const stored = await walObjects(archive);
    for (const segment of segments) {
      const copies = stored.filter((key) => key.startsWith(`${segment}-`));
      expect(copies, segment).to.have.length(1);
      // Tagged by the bytes stored (format 2), not by a SHA-256 of the 16 MiB segment.
      expect(copies[0]).to.match(/^[0-9A-F]{24}-v2-[0-9a-f]{64}\.zst\.enc$/);
    }
    // Owned by the server's user, readable by it only.
    const {uid} = postgresUser();
    const {stdout} = await execa('stat', ['-c', '%u %a', walFile(archive, stored[0]!)]);
    expect(stdout).to.equal(`${uid} 600`);
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    for (const segment of segments) {
      const target = path.join(scratch, 'RECOVERYXLOG');
      const fetched = await wal(['fetch', segment, target, '--json']);
      expect(fetched.exitCode, fetched.stderr).to.equal(0);
      expect((await readFile(target)).equals(await readFile(path.join(cluster.data, 'pg_wal', segment))), segment).to.equal(true);
    }
  });

  it('succeeds at once for a file archived already with the same content, and writes nothing', async function () {
    const [segment] = await archivedSegments();
    const before = await walObjects(archive);
    const again = await wal(['push', path.join('pg_wal', segment!), '--json']);
    expect(again.exitCode, again.stderr).to.equal(0);
    expect(again.json.result.locations).to.deep.equal([{location: 'primary', outcome: 'present'}]);
    expect(await walObjects(archive)).to.deep.equal(before);
  });

  it('stores a file pushed again as the same bytes under the same key, wherever it is pushed', async function () {
    const [segment] = await archivedSegments();
    const [first, second] = [(await makeTempDir('synapse-walsame-')).path, (await makeTempDir('synapse-walsame-')).path];
    for (const location of [first, second]) {
      const pushed = await wal(['push', path.join('pg_wal', segment!)], {BACKUP_DIR: location});
      expect(pushed.exitCode, pushed.stderr).to.equal(0);
    }
    const [one] = await walObjects(first);
    expect(await walObjects(second)).to.deep.equal([one]);
    expect(await walObjects(archive)).to.include(one);
    expect((await readFile(walFile(first, one!))).equals(await readFile(walFile(second, one!)))).to.equal(true);
  });

  it("takes a copy of the same file stored under another tag (an earlier version's format 1, another compression) for the file: fetched, and pushing it again writes nothing", async function () {
    const [segment, other] = await archivedSegments();
    const location = (await makeTempDir('synapse-walformat-')).path;
    const claimed = await wal(['push', path.join('pg_wal', other!)], {BACKUP_DIR: location});
    expect(claimed.exitCode, claimed.stderr).to.equal(0);
    const formatOne = await storeFormatOneCopy(location, segment!);
    const before = await walObjects(location);
    expect(formatOne).to.match(/^[0-9A-F]{24}-[0-9a-f]{64}\.zst\.enc$/);
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    const fetched = await wal(['fetch', segment!, path.join(scratch, 'one'), '--json'], {BACKUP_DIR: location});
    expect(fetched.exitCode, fetched.stderr).to.equal(0);
    expect(fetched.json.result.key).to.equal(`wal/${formatOne}`);
    expect((await readFile(path.join(scratch, 'one'))).equals(await readFile(path.join(cluster.data, 'pg_wal', segment!)))).to.equal(true);
    const again = await wal(['push', path.join('pg_wal', segment!), '--json'], {BACKUP_DIR: location});
    expect(again.exitCode, again.stderr).to.equal(0);
    expect(again.json.result.locations).to.deep.equal([{location: 'primary', outcome: 'present'}]);
    expect(await walObjects(location)).to.deep.equal(before);
    // Other content under that name is still a conflict, whatever the format of the copy.
    const changed = await segmentCopy(segment!, (bytes) => (bytes[8192] ^= 0xff));
    const conflicting = await wal(['push', changed, '--pg-data', cluster.data], {BACKUP_DIR: location});
    expect(conflicting.exitCode, conflicting.stderr).to.equal(17);
    expect(conflicting.stderr).to.include(formatOne);
    expect(await walObjects(location)).to.deep.equal(before);

    // Compressed otherwise (another level here; another zstd, elsewhere): other stored bytes, another tag, the same file.
    const relevel = (await makeTempDir('synapse-walformat-')).path;
    const lighter = await wal(['push', path.join('pg_wal', segment!)], {BACKUP_DIR: relevel, BACKUP_COMPRESSION_LEVEL: '1'});
    expect(lighter.exitCode, lighter.stderr).to.equal(0);
    const stored = await walObjects(relevel);
    expect(stored).to.have.length(1);
    expect(await walObjects(archive)).to.not.include(stored[0]);
    const defaultLevel = await wal(['push', path.join('pg_wal', segment!), '--json'], {BACKUP_DIR: relevel});
    expect(defaultLevel.exitCode, defaultLevel.stderr).to.equal(0);
    expect(defaultLevel.json.result.locations).to.deep.equal([{location: 'primary', outcome: 'present'}]);
    expect(await walObjects(relevel)).to.deep.equal(stored);
  });

  it("binds a format-2 tag to the name: a genuine copy of one segment under another's name, with its own tag or the other's, is refused", async function () {
    const [first, second] = await archivedSegments();
    const location = (await makeTempDir('synapse-walbound-')).path;
    for (const segment of [first, second]) expect((await wal(['push', path.join('pg_wal', segment!)], {BACKUP_DIR: location})).exitCode).to.equal(0);
    const stored = await walObjects(location);
    const ofFirst = stored.find((key) => key.startsWith(`${first}-`))!;
    const ofSecond = stored.find((key) => key.startsWith(`${second}-`))!;
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    await rm(walFile(location, ofSecond));
    // The first segment's bytes, which decrypt and decompress, under the second's name: with the
    // first's tag (right for those bytes, wrong for that name), then with the second's.
    for (const planted of [ofFirst.replace(first!, second!), ofSecond]) {
      await copyFile(walFile(location, ofFirst), await plantedWalFile(location, planted));
      const refused = await wal(['fetch', second!, path.join(scratch, 'x')], {BACKUP_DIR: location});
      expect(refused.exitCode, refused.stderr).to.equal(14);
      expect(refused.stderr).to.include(planted);
      expect(refused.stderr).to.include('does not match its MAC');
      expect(await readdir(scratch)).to.deep.equal([]);
      await rm(walFile(location, planted));
    }
  });

  it('compresses and encrypts a file once for every location: each holds the same bytes', async function () {
    const [segment] = await archivedSegments();
    const [first, second] = [(await makeTempDir('synapse-walonce-')).path, (await makeTempDir('synapse-walonce-')).path];
    const pushed = await wal(['push', path.join('pg_wal', segment!), '--json'], {BACKUP_DIR: undefined, BACKUP_LOCATIONS: `primary=local:${first},copy=local:${second}`});
    expect(pushed.exitCode, pushed.stderr).to.equal(0);
    expect(pushed.json.result.locations.map((location: {outcome: string}) => location.outcome)).to.deep.equal(['stored', 'stored']);
    const [stored] = (await walObjects(first)).filter((key) => key.startsWith(`${segment}-`));
    expect((await readFile(walFile(first, stored!))).equals(await readFile(walFile(second, stored!)))).to.equal(true);
  });

  it('archives a file too large to hold in memory (past 64 MiB: initdb --wal-segsize allows 1 GiB) to every location, and fetches it back byte for byte', async function () {
    const directory = path.join((await makeTempDir('synapse-walbig-')).path, 'pg_wal');
    await mkdir(directory);
    const name = '0000000100000009000000FE';
    const content = Buffer.concat([randomBytes(4 * 1024 * 1024), Buffer.alloc(64 * 1024 * 1024, 7), randomBytes(4 * 1024 * 1024 + 123)]);
    await writeFile(path.join(directory, name), content);
    const [first, second] = [(await makeTempDir('synapse-walbig-')).path, (await makeTempDir('synapse-walbig-')).path];
    const pushed = await wal(['push', path.join(directory, name), '--pg-data', cluster.data, '--json'], {BACKUP_DIR: undefined, BACKUP_LOCATIONS: `primary=local:${first},copy=local:${second}`});
    expect(pushed.exitCode, pushed.stderr).to.equal(0);
    expect(pushed.json.result).to.include({bytes: content.length});
    expect(pushed.json.result.locations.map((location: {outcome: string}) => location.outcome)).to.deep.equal(['stored', 'stored']);
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    for (const location of [first, second]) {
      const target = path.join(scratch, path.basename(location));
      const fetched = await wal(['fetch', name, target], {BACKUP_DIR: location});
      expect(fetched.exitCode, fetched.stderr).to.equal(0);
      expect((await readFile(target)).equals(content), location).to.equal(true);
    }
  });

  it('refuses a file of other content under an archived name, loudly, and leaves the archived one as it is', async function () {
    const [segment] = await archivedSegments();
    const before = await walObjects(archive);
    const original = await readFile(walFile(archive, before.find((key) => key.startsWith(segment!))!));
    const changed = await segmentCopy(segment!, (bytes) => (bytes[4096] ^= 0xff));
    const pushed = await wal(['push', changed, '--pg-data', cluster.data]);
    expect(pushed.exitCode, pushed.stderr).to.equal(17);
    expect(pushed.stderr).to.include(`unable to archive '${segment}'`);
    expect(pushed.stderr).to.include('other content');
    expect(await walObjects(archive)).to.deep.equal(before);
    expect((await readFile(walFile(archive, before.find((key) => key.startsWith(segment!))!))).equals(original)).to.equal(true);
  });

  it('exits 16 without a word for a file no location holds, and never hands out a .partial for its full segment', async function () {
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    const missing = await wal(['fetch', '00000001000000FF000000FE', path.join(scratch, 'x')]);
    expect(missing.exitCode).to.equal(16);
    expect(missing.stderr).to.equal('');
    expect(missing.stdout).to.equal('');
    const history = await wal(['fetch', '0000000A.history', path.join(scratch, 'x')]);
    expect(history.exitCode).to.equal(16);

    // A promoted standby leaves the last segment of its old timeline as .partial.
    const [segment] = await archivedSegments();
    const partialName = '00000001000000AA00000001.partial';
    const partial = path.join(path.dirname(await segmentCopy(segment!)), partialName);
    await copyFile(path.join(cluster.data, 'pg_wal', segment!), partial);
    const pushed = await wal(['push', partial, '--pg-data', cluster.data]);
    expect(pushed.exitCode, pushed.stderr).to.equal(0);
    const full = await wal(['fetch', '00000001000000AA00000001', path.join(scratch, 'y')]);
    expect(full.exitCode, full.stderr).to.equal(16);
    const asPartial = await wal(['fetch', partialName, path.join(scratch, 'z')]);
    expect(asPartial.exitCode, asPartial.stderr).to.equal(0);
    expect((await readFile(path.join(scratch, 'z'))).equals(await readFile(partial))).to.equal(true);
  });

  it('keeps timeline history files like segments: pushed, fetched, never replaced by other content', async function () {
    const directory = path.dirname(await segmentCopy((await archivedSegments())[0]!));
    const history = path.join(directory, '00000002.history');
    await writeFile(history, '1\t0/3000000\tno recovery target specified\n');
    const pushed = await wal(['push', history, '--pg-data', cluster.data]);
    expect(pushed.exitCode, pushed.stderr).to.equal(0);
    await writeFile(history, '1\t0/5000000\tno recovery target specified\n');
    const other = await wal(['push', history, '--pg-data', cluster.data]);
    expect(other.exitCode, other.stderr).to.equal(17);
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    const fetched = await wal(['fetch', '00000002.history', path.join(scratch, 'h')]);
    expect(fetched.exitCode, fetched.stderr).to.equal(0);
    expect(await readFile(path.join(scratch, 'h'), 'utf8')).to.equal('1\t0/3000000\tno recovery target specified\n');

    const backupLabel = path.join(directory, '000000010000000000000002.00000028.backup');
    await writeFile(backupLabel, 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n');
    expect((await wal(['push', backupLabel, '--pg-data', cluster.data])).exitCode).to.equal(0);
    expect((await walObjects(archive)).some((key) => key.startsWith('000000010000000000000002.00000028.backup-'))).to.equal(true);

    const notWal = path.join(directory, 'postgresql.conf');
    await writeFile(notWal, 'x');
    const refused = await wal(['push', notWal, '--pg-data', cluster.data]);
    expect(refused.exitCode).to.equal(2);
    expect(refused.stderr).to.include('is not the name of a WAL segment');
  });

  it('refuses a planted file and a damaged copy, naming them; pushing the file again replaces the damaged copy of its own', async function () {
    const [first, second] = await archivedSegments();
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    // Planted: a file of the right shape whose tag nobody without the key can compute.
    const planted = `${second}-${'ab'.repeat(32)}.zst.enc`;
    const genuine = (await walObjects(archive)).find((key) => key.startsWith(`${second}-`))!;
    await copyFile(walFile(archive, genuine), await plantedWalFile(archive, planted));
    const good = await wal(['fetch', second!, path.join(scratch, 'a')]);
    expect(good.exitCode, good.stderr).to.equal(0);
    expect((await readFile(path.join(scratch, 'a'))).equals(await readFile(path.join(cluster.data, 'pg_wal', second!)))).to.equal(true);
    // Only the planted one left: refused, loudly.
    await execa('mv', [walFile(archive, genuine), path.join(home.path, 'genuine')]);
    const refused = await wal(['fetch', second!, path.join(scratch, 'b')]);
    expect(refused.exitCode, refused.stderr).to.equal(14);
    expect(refused.stderr).to.include(planted);
    expect(refused.stderr).to.include('MAC');
    expect((await readdir(scratch)).sort()).to.deep.equal(['a']);
    await execa('mv', [path.join(home.path, 'genuine'), walFile(archive, genuine)]);
    await execa('rm', [walFile(archive, planted)]);

    // A copy of ours damaged in place: refused; the next push of the file replaces it.
    const ours = (await walObjects(archive)).find((key) => key.startsWith(`${first}-`))!;
    const bytes = await readFile(walFile(archive, ours));
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    await writeFile(walFile(archive, ours), bytes);
    const damaged = await wal(['fetch', first!, path.join(scratch, 'c')]);
    expect(damaged.exitCode, damaged.stderr).to.equal(13);
    expect(damaged.stderr).to.include('cannot be decompressed to its end');
    expect(damaged.stderr).to.include(ours);
    const repushed = await wal(['push', path.join('pg_wal', first!), '--json']);
    expect(repushed.exitCode, repushed.stderr).to.equal(0);
    expect(repushed.json.result.locations[0].outcome).to.equal('replaced');
    const fetched = await wal(['fetch', first!, path.join(scratch, 'c')]);
    expect(fetched.exitCode, fetched.stderr).to.equal(0);
    expect((await readFile(path.join(scratch, 'c'))).equals(await readFile(path.join(cluster.data, 'pg_wal', first!)))).to.equal(true);
  });

  it('refuses an unencrypted file where a key is configured, and cannot be read without the key', async function () {
    const [segment] = await archivedSegments();
    const other = (await makeTempDir('synapse-walplain-')).path;
    const plain = await wal(['push', path.join('pg_wal', segment!)], {BACKUP_DIR: other, BACKUP_ENCRYPTION_KEY_FILE: undefined});
    expect(plain.exitCode, plain.stderr).to.equal(0);
    const [unencrypted] = await walObjects(other);
    expect(unencrypted).to.match(/\.zst$/);
    await copyFile(walFile(other, unencrypted!), await plantedWalFile(archive, unencrypted!));
    const genuine = (await walObjects(archive)).find((key) => key.startsWith(`${segment}-`) && key.endsWith('.enc'))!;
    await execa('mv', [walFile(archive, genuine), path.join(home.path, 'genuine')]);
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    const refused = await wal(['fetch', segment!, path.join(scratch, 'a')]);
    expect(refused.exitCode, refused.stderr).to.equal(14);
    expect(refused.stderr).to.include('not encrypted, but a key is configured');
    await execa('mv', [path.join(home.path, 'genuine'), walFile(archive, genuine)]);
    await execa('rm', [walFile(archive, unencrypted!)]);
    const noKey = await wal(['fetch', segment!, path.join(scratch, 'b')], {BACKUP_ENCRYPTION_KEY_FILE: undefined});
    expect(noKey.exitCode).to.not.equal(0);
    expect(noKey.stderr).to.include('no key is configured');
  });

  it('claims each archive for one cluster: another cluster is refused, and so is an identity that is not authentic', async function () {
    const other = await startThrowawayCluster();
    try {
      const name = (await readdir(path.join(other.data, 'pg_wal'))).find((file) => /^[0-9A-F]{24}$/.test(file))!;
      const refused = await wal(['push', path.join('pg_wal', name)], {}, other.data);
      expect(refused.exitCode, refused.stderr).to.equal(17);
      expect(refused.stderr).to.include('system identifier');
    } finally {
      await other.stop();
    }
    const identity = JSON.parse(await readFile(walFile(archive, 'archive.json'), 'utf8'));
    const forged = path.join((await makeTempDir('synapse-walforged-')).path);
    await mkdir(path.join(forged, 'wal'), {mode: 0o700});
    await writeFile(path.join(forged, 'wal', 'archive.json'), JSON.stringify({...identity, mac: 'cd'.repeat(32)}));
    const [segment] = await archivedSegments();
    const planted = await wal(['push', path.join('pg_wal', segment!)], {BACKUP_DIR: forged});
    expect(planted.exitCode, planted.stderr).to.equal(14);
    expect(planted.stderr).to.include('archive identity');
    expect(await walObjects(forged)).to.deep.equal([]);
  });

  it('succeeds only once every location holds the file, naming the one that failed', async function () {
    const [segment] = await archivedSegments();
    const first = (await makeTempDir('synapse-walloc-')).path;
    const second = (await makeTempDir('synapse-walloc-')).path;
    const locations = `primary=local:${first},offsite=local:${second}`;
    // Read-only to the pushing user: runs as postgres, for which root's mode bits hold.
    await chmod(second, 0o555);
    const {uid, gid} = postgresUser();
    await chown(first, uid, gid);
    const asPostgres = (args: string[]) =>
      execa('runuser', ['-u', 'postgres', '--', 'env', `BACKUP_LOCATIONS=${locations}`, `BACKUP_ENCRYPTION_KEY_FILE=${env.BACKUP_ENCRYPTION_KEY_FILE}`, 'BACKUP_ENCRYPTION_ITERATIONS=20000', LAUNCHER, 'wal', ...args], {cwd: cluster.data, reject: false});
    const failed = await asPostgres(['push', path.join('pg_wal', segment!)]);
    expect(failed.exitCode, failed.stderr).to.equal(7);
    expect(failed.stderr).to.include("location 'offsite'");
    expect(failed.stderr, failed.stderr).to.include('is not writable by this user');
    await chown(second, uid, gid);
    await chmod(second, 0o700);
    const pushed = await asPostgres(['push', path.join('pg_wal', segment!), '--json']);
    expect(pushed.exitCode, pushed.stderr).to.equal(0);
    expect(JSON.parse(pushed.stdout).result.locations.map((entry: {location: string; outcome: string}) => `${entry.location}:${entry.outcome}`)).to.deep.equal(['primary:stored', 'offsite:stored']);
    expect(await walObjects(first)).to.have.length(1);
    expect(await walObjects(second)).to.deep.equal(await walObjects(first));
    // The primary unreadable to the server's user: fetch takes the next location, and says so.
    await chmod(path.join(first, 'wal'), 0o000);
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    await chown(scratch, uid, gid);
    const fetched = await asPostgres(['fetch', segment!, path.join(scratch, 'a'), '--json']);
    await chmod(path.join(first, 'wal'), 0o700);
    expect(fetched.exitCode, fetched.stderr).to.equal(0);
    expect(JSON.parse(fetched.stdout).result.location).to.equal('offsite');
    expect(JSON.parse(fetched.stdout).result.skipped[0].location).to.equal('primary');
    expect((await readFile(path.join(scratch, 'a'))).equals(await readFile(path.join(cluster.data, 'pg_wal', segment!)))).to.equal(true);
  });

  it('a push killed mid-upload leaves nothing that fetch hands out; the retry archives the file', async function () {
    // In a directory of root's: plugins are loaded only from where no other user can write.
    const data = path.join((await makeTempDir('synapse-walplugins-')).path, 'data');
    const link = await runCli(['plugins', 'link', '--no-install', STALLING], {cwd: cluster.data, env: {SYNAPSE_BACKUP_DATA_DIR: data}});
    expect(link.exitCode, link.stderr).to.equal(0);
    const target = (await makeTempDir('synapse-walkill-')).path;
    const segments = await archivedSegments();
    const segment = segments.at(-1)!;
    const child = spawnCli(['wal', 'push', path.join('pg_wal', segment)], {cwd: cluster.data, env: {...env, BACKUP_DIR: target, BACKUP_STORAGE: 'stalling', STALLING_STORAGE_AT: 'put-midway', SYNAPSE_BACKUP_DATA_DIR: data}});
    await waitFor(async () => (await walFileNames(target)).some((file) => file.endsWith('.partial')), 'the upload to start', 30_000);
    child.kill('SIGKILL');
    await child;
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    const fetched = await wal(['fetch', segment, path.join(scratch, 'a')], {BACKUP_DIR: target});
    expect(fetched.exitCode, fetched.stderr).to.equal(16);
    const retried = await wal(['push', path.join('pg_wal', segment)], {BACKUP_DIR: target});
    expect(retried.exitCode, retried.stderr).to.equal(0);
    const again = await wal(['fetch', segment, path.join(scratch, 'a')], {BACKUP_DIR: target});
    expect(again.exitCode, again.stderr).to.equal(0);
    expect((await readFile(path.join(scratch, 'a'))).equals(await readFile(path.join(cluster.data, 'pg_wal', segment)))).to.equal(true);
  });

  describe('pushing ahead of the archiver', function () {
    /** Files waiting for the archiver: archiving stopped (a failing command), WAL written, then a segment switch. */
    async function backlog(rows = 130_000, least = 5): Promise<string[]> {
      await cluster.psql("alter system set archive_command = 'false'");
      await cluster.psql('select pg_reload_conf()');
      await cluster.psql(`create table if not exists filler(x text); insert into filler select repeat(md5(g::text), 20) from generate_series(1, ${rows}) g`);
      await cluster.psql('select pg_switch_wal()');
      const ready = (await readdir(path.join(cluster.data, 'pg_wal', 'archive_status'))).filter((name) => name.endsWith('.ready')).map((name) => name.replace(/\.ready$/, '')).sort();
      expect(ready.length, 'files waiting').to.be.at.least(least);
      return ready;
    }

    async function resumeArchiving(): Promise<void> {
      await cluster.psql('alter system reset archive_command');
      await cluster.psql('select pg_reload_conf()');
    }

    function launcherAsPostgres(args: string[], extra: Record<string, string> = {}) {
      const settings = Object.entries({...env, ...extra}).map(([name, value]) => `${name}=${value}`);
      return execa('runuser', ['-u', 'postgres', '--', 'env', ...settings, LAUNCHER, ...args], {cwd: cluster.data, reject: false});
    }

    const spool = (): string => path.join(cluster.data, 'pg_wal', 'synapse-backup-spool');

    it('archives the waiting files with the one asked for, acknowledges each, and the archiver catches up through the acknowledgements', async function () {
      const ready = await backlog();
      const pushed = await launcherAsPostgres(['wal', 'push', path.join('pg_wal', ready[0]!), '--json']);
      expect(pushed.exitCode, pushed.stderr).to.equal(0);
      const result = JSON.parse(pushed.stdout).result;
      expect(result.pushedAhead).to.deep.equal(ready.slice(1));
      const stored = await walObjects(archive);
      for (const name of ready) expect(stored.some((key) => key.startsWith(`${name}-`)), name).to.equal(true);
      expect((await readdir(spool())).filter((entry) => entry.endsWith('.ok')).sort()).to.deep.equal(ready.slice(1).map((name) => `${name}.ok`));
      const {stdout: mode} = await execa('stat', ['-c', '%U %a', spool()]);
      expect(mode).to.equal('postgres 700');

      // The server's own archiver, through the archive_command of the README, uses them up.
      await resumeArchiving();
      await waitFor(async () => (await cluster.psql('select last_archived_wal from pg_stat_archiver')) >= ready.at(-1)!, 'the archiver to catch up');
      // The launcher uses an acknowledgement up by emptying it (a removal would cost a process); the next push clears them away.
      const unused = async (): Promise<string[]> => {
        const entries = (await readdir(spool())).filter((entry) => entry.endsWith('.ok'));
        const sizes = await Promise.all(entries.map(async (entry) => (await stat(path.join(spool(), entry))).size));
        return entries.filter((_entry, index) => sizes[index]! > 0);
      };
      await waitFor(async () => (await unused()).length === 0, 'the acknowledgements to be used');
      expect(await cluster.psql("select count(*) from pg_ls_dir('pg_wal/archive_status') as f where f like '%.ready'")).to.equal('0');
    });

    it('archives a backlog of 8 files or more on worker threads, through the launcher: each fetched back byte for byte', async function () {
      const ready = await backlog(300_000, 9);
      const pushed = await launcherAsPostgres(['wal', 'push', path.join('pg_wal', ready[0]!), '--json']);
      expect(pushed.exitCode, pushed.stderr).to.equal(0);
      // A worker that could not start would be said here (its files then encoded on the main thread).
      expect(pushed.stderr).to.equal('');
      expect(JSON.parse(pushed.stdout).result.pushedAhead).to.deep.equal(ready.slice(1));
      const scratch = (await makeTempDir('synapse-walworkers-')).path;
      for (const name of ready) {
        const fetched = await wal(['fetch', name, path.join(scratch, name)]);
        expect(fetched.exitCode, fetched.stderr).to.equal(0);
        expect((await readFile(path.join(scratch, name))).equals(await readFile(path.join(cluster.data, 'pg_wal', name))), name).to.equal(true);
      }
      await resumeArchiving();
      await waitFor(async () => (await cluster.psql("select count(*) from pg_ls_dir('pg_wal/archive_status') as f where f like '%.ready'")) === '0', 'the archiver to catch up');
    });

    it('answers an acknowledged file without archiving it again, and only while the acknowledgement holds', async function () {
      const ready = await backlog();
      const pushed = await launcherAsPostgres(['wal', 'push', path.join('pg_wal', ready[0]!)]);
      expect(pushed.exitCode, pushed.stderr).to.equal(0);
      const [, second, third, fourth] = ready;
      // Remove the archived copy behind an acknowledgement: the answer comes from the acknowledgement alone.
      const removeCopy = async (name: string): Promise<void> => {
        for (const key of (await walObjects(archive)).filter((object) => object.startsWith(`${name}-`))) await execa('rm', [walFile(archive, key)]);
      };
      await removeCopy(second!);
      const answered = await launcherAsPostgres(['wal', 'push', path.join('pg_wal', second!)]);
      expect(answered.exitCode, answered.stderr).to.equal(0);
      expect((await walObjects(archive)).some((key) => key.startsWith(`${second}-`)), 'archived again').to.equal(false);
      expect((await stat(path.join(spool(), `${second}.ok`))).size, 'used up').to.equal(0);
      // Used up: the next call for it archives it.
      expect((await launcherAsPostgres(['wal', 'push', path.join('pg_wal', second!)])).exitCode).to.equal(0);
      expect((await walObjects(archive)).some((key) => key.startsWith(`${second}-`))).to.equal(true);

      // A file written since its acknowledgement is archived again.
      await removeCopy(third!);
      await execa('touch', ['-d', '+1 minute', path.join(cluster.data, 'pg_wal', third!)]);
      expect((await launcherAsPostgres(['wal', 'push', path.join('pg_wal', third!)])).exitCode).to.equal(0);
      expect((await walObjects(archive)).some((key) => key.startsWith(`${third}-`)), 'newer than its acknowledgement').to.equal(true);
      // Other locations than the acknowledgements were made for: archived there, not answered.
      const elsewhere = (await makeTempDir('synapse-walelse-')).path;
      await chown(elsewhere, postgresUser().uid, postgresUser().gid);
      expect((await launcherAsPostgres(['wal', 'push', path.join('pg_wal', fourth!)], {BACKUP_DIR: elsewhere})).exitCode).to.equal(0);
      expect((await walObjects(elsewhere)).some((key) => key.startsWith(`${fourth}-`)), 'archived at the other location').to.equal(true);
      await resumeArchiving();
      await waitFor(async () => (await cluster.psql("select count(*) from pg_ls_dir('pg_wal/archive_status') as f where f like '%.ready'")) === '0', 'the archiver to catch up');
    });

    it('acknowledges no file it could not archive', async function () {
      const ready = await backlog();
      const unreadable = path.join(cluster.data, 'pg_wal', ready[2]!);
      await chmod(unreadable, 0o000);
      try {
        const pushed = await launcherAsPostgres(['wal', 'push', path.join('pg_wal', ready[0]!), '--json']);
        expect(pushed.exitCode, pushed.stderr).to.equal(0);
        const result = JSON.parse(pushed.stdout).result;
        expect(result.pushedAhead).to.not.include(ready[2]);
        expect(result.pushedAhead).to.include(ready[1]);
        expect((await readdir(spool())).includes(`${ready[2]}.ok`)).to.equal(false);
        // The archiver's own call for it fails, as it must while the file cannot be read.
        const own = await launcherAsPostgres(['wal', 'push', path.join('pg_wal', ready[2]!)]);
        expect(own.exitCode).to.not.equal(0);
      } finally {
        await chmod(unreadable, 0o600);
      }
      await resumeArchiving();
      await waitFor(async () => (await cluster.psql("select count(*) from pg_ls_dir('pg_wal/archive_status') as f where f like '%.ready'")) === '0', 'the archiver to catch up');
    });

    describe('answering the archiver before the files pushed ahead are done', function () {
      /**
       * A pg_wal of its own (copies of the workload's segments, each waiting for the archiver)
       * beside a copy of the cluster's pg_control, pushed as root into an archive whose storage
       * never answers for one chosen file (the stalling fixture), so that the push still has it in
       * hand, deterministically, for as long as the case needs.
       */
      async function stalledBacklog() {
        const segments = (await archivedSegments()).slice(-3);
        expect(segments).to.have.length(3);
        const root = (await makeTempDir('synapse-walrelease-')).path;
        await mkdir(path.join(root, 'pg_wal', 'archive_status'), {recursive: true});
        await mkdir(path.join(root, 'global'));
        await copyFile(path.join(cluster.data, 'global', 'pg_control'), path.join(root, 'global', 'pg_control'));
        for (const name of segments) {
          await copyFile(path.join(cluster.data, 'pg_wal', name), path.join(root, 'pg_wal', name));
          await writeFile(path.join(root, 'pg_wal', 'archive_status', `${name}.ready`), '');
        }
        // Waiting, but gone from pg_wal: a file the push fails.
        const missing = '0000000100000000000000FF';
        await writeFile(path.join(root, 'pg_wal', 'archive_status', `${missing}.ready`), '');
        // In a directory of root's: plugins are loaded only from where no other user can write.
        const data = path.join((await makeTempDir('synapse-walplugins-')).path, 'data');
        const link = await runCli(['plugins', 'link', '--no-install', STALLING], {cwd: root, env: {SYNAPSE_BACKUP_DATA_DIR: data}});
        expect(link.exitCode, link.stderr).to.equal(0);
        const target = (await makeTempDir('synapse-walrelease-archive-')).path;
        const settings = {...env, PATH: process.env.PATH!, BACKUP_DIR: target, BACKUP_STORAGE: 'stalling', SYNAPSE_BACKUP_DATA_DIR: data};
        const errors = path.join(root, 'stderr');
        // The archiver's call, with its output in a file as the server's log is: a pipe would be
        // held open by the push that goes on, and whoever reads it would wait for that.
        const archiverCall = (name: string, extra: Record<string, string> = {}) =>
          execa('sh', ['-c', 'exec "$0" wal push "$1" >/dev/null 2>>"$2"', LAUNCHER, path.join('pg_wal', name), errors], {
            cwd: root,
            env: {...settings, ...extra},
            extendEnv: false,
            reject: false,
            timeout: 40_000,
          });
        const spool = path.join(root, 'pg_wal', 'synapse-backup-spool');
        const pusherOf = async (name: string): Promise<number> => Number((await readFile(path.join(spool, `${name}.pending`), 'utf8')).split(' ')[0]);
        const running = (pid: number): boolean => {
          try {
            process.kill(pid, 0);
            return true;
          } catch {
            return false;
          }
        };
        cleanups.push(async () => {
          // A push the case left running (a stalled one outlives a failed case): every process working in this pg_wal's directory.
          for (const entry of await readdir('/proc')) {
            if (!/^\d+$/.test(entry)) continue;
            const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => '');
            if (cwd === root) process.kill(Number(entry), 'SIGKILL');
          }
        });
        return {segments, missing, root, target, errors, spool, archiverCall, pusherOf, running};
      }

      const cleanups: Array<() => Promise<void>> = [];
      afterEach(async function () {
        for (const cleanup of cleanups.splice(0)) await cleanup();
      });

      it("exits 0 once its own file is durable while it goes on with the others; the archiver's call for one still in hand waits for it, and archives it itself once that push is gone", async function () {
        const {segments, missing, target, errors, spool, archiverCall, pusherOf, running} = await stalledBacklog();
        const [first, second, stalled] = segments as [string, string, string];
        const stall = {STALLING_STORAGE_AT: 'put-named', STALLING_STORAGE_NAMED: stalled};
        const pushed = await archiverCall(first, stall);
        expect(pushed.exitCode, await readFile(errors, 'utf8').catch(() => '')).to.equal(0);
        // Answered while the push still has a file in hand: it runs on, its mark says so.
        const pusher = await pusherOf(stalled);
        expect(running(pusher), 'the push goes on after answering').to.equal(true);
        try {
          const scratch = (await makeTempDir('synapse-walrelease-fetch-')).path;
          const fetched = await wal(['fetch', first, path.join(scratch, first)], {BACKUP_DIR: target});
          expect(fetched.exitCode, fetched.stderr).to.equal(0);
          expect((await readFile(path.join(scratch, first))).equals(await readFile(path.join(cluster.data, 'pg_wal', first)))).to.equal(true);
          // The others are acknowledged as each is durable; the stalled one is not.
          await waitFor(async () => (await readdir(spool)).some((entry) => entry.endsWith('.ok')), 'the file pushed ahead to be acknowledged');
          expect((await readdir(spool)).filter((entry) => entry.endsWith('.ok'))).to.deep.equal([`${second}.ok`]);
          const answered = await archiverCall(second);
          expect(answered.exitCode, 'answered from its acknowledgement').to.equal(0);
          // A file the push failed is not waited for: the call archives it itself, here failing
          // loudly, and leaves alone the file the other push has in hand.
          const failing = archiverCall(missing);
          expect(await Promise.race([failing.then(() => 'ended'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 15_000))])).to.equal('ended');
          expect((await failing).exitCode).to.not.equal(0);

          // The call for the stalled file waits while the push that has it runs...
          const waiting = archiverCall(stalled);
          const early = await Promise.race([waiting.then(() => 'ended'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 3000))]);
          expect(early, 'the call waits for the push that has the file').to.equal('waiting');
          expect((await walObjects(target)).some((key) => key.includes(`${stalled}-`)), 'not archived beside that push').to.equal(false);
          // ...and once that push is gone (killed here), archives the file itself.
          process.kill(pusher, 'SIGKILL');
          const own = await waiting;
          expect(own.exitCode, await readFile(errors, 'utf8').catch(() => '')).to.equal(0);
          expect((await walObjects(target)).some((key) => key.includes(`${stalled}-`)), 'archived by the call itself').to.equal(true);
          const scratchStalled = (await makeTempDir('synapse-walrelease-fetch-')).path;
          const again = await wal(['fetch', stalled, path.join(scratchStalled, stalled)], {BACKUP_DIR: target});
          expect(again.exitCode, again.stderr).to.equal(0);
          expect((await readFile(path.join(scratchStalled, stalled))).equals(await readFile(path.join(cluster.data, 'pg_wal', stalled)))).to.equal(true);
        } finally {
          if (running(pusher)) process.kill(pusher, 'SIGKILL');
        }
      });

      it('fails the call of a push killed before its own file is durable, and the next call archives it', async function () {
        const {segments, target, errors, archiverCall, pusherOf, running} = await stalledBacklog();
        const [first] = segments as [string];
        // Every file stalls, so that the marks of the files taken ahead stay while the case reads them.
        const call = archiverCall(first, {STALLING_STORAGE_AT: 'put-end'});
        // The push marks the files it takes ahead before it starts: its PID is there.
        await waitFor(async () => (await pusherOf(segments[1]!).catch(() => 0)) > 0, 'the push to start');
        const pusher = await pusherOf(segments[1]!);
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(running(pusher)).to.equal(true);
        process.kill(pusher, 'SIGKILL');
        const killed = await call;
        expect(killed.exitCode, 'never an answer of success').to.equal(1);
        expect(await readFile(errors, 'utf8')).to.include(`wal push pg_wal/${first} ended without saying whether the file is archived`);
        expect((await walObjects(target)).some((key) => key.includes(`${first}-`))).to.equal(false);
        const retried = await archiverCall(first);
        expect(retried.exitCode, await readFile(errors, 'utf8')).to.equal(0);
        expect((await walObjects(target)).some((key) => key.includes(`${first}-`))).to.equal(true);
      });
    });

    it('WAL_ARCHIVE_ACKNOWLEDGE=primary: done once the primary holds a file, the other location named, reported behind by status and caught up by backup sync; its acknowledgements answer no push that waits for every location', async function () {
      const ready = await backlog();
      const {uid, gid} = postgresUser();
      const first = (await makeTempDir('synapse-walprimary-')).path;
      const second = (await makeTempDir('synapse-waloffsite-')).path;
      await chown(first, uid, gid);
      // Root's and read-only: the server's user cannot write there.
      await chmod(second, 0o555);
      const settings = {BACKUP_LOCATIONS: `primary=local:${first},offsite=local:${second}`, WAL_ARCHIVE_ACKNOWLEDGE: 'primary'};
      const everywhere = {BACKUP_LOCATIONS: settings.BACKUP_LOCATIONS};
      const push = (name: string, extra: Record<string, string>, json = true) => launcherAsPostgres(['wal', 'push', path.join('pg_wal', name), ...(json ? ['--json'] : [])], extra);

      const waiting = await push(ready[0]!, everywhere);
      expect(waiting.exitCode, 'every location must hold it by default').to.equal(7);

      const pushed = await push(ready[0]!, settings);
      expect(pushed.exitCode, pushed.stderr).to.equal(0);
      const result = JSON.parse(pushed.stdout).result;
      expect(result.locations.map((entry: {location: string; outcome: string}) => `${entry.location}:${entry.outcome}`)).to.deep.equal(['primary:stored', 'offsite:failed']);
      expect(result.locations[1].error).to.include('not writable');
      const warned = (JSON.parse(pushed.stdout).warnings as string[]).join('\n');
      expect(warned).to.include("location 'offsite' could not be opened");
      expect(warned).to.include('backup sync');
      expect(result.pushedAhead).to.deep.equal(ready.slice(1));
      const stored = await walObjects(first);
      for (const name of ready) expect(stored.some((key) => key.startsWith(`${name}-`)), name).to.equal(true);
      expect(await walObjects(second)).to.deep.equal([]);

      // An acknowledgement made once the primary held the file says nothing of the offsite copy.
      const strict = await push(ready[1]!, everywhere, false);
      expect(strict.exitCode, 'answered from an acknowledgement of the primary alone').to.equal(7);
      expect((await push(ready[1]!, settings, false)).exitCode).to.equal(0);

      // The primary itself must hold the file.
      const primaryGone = (await makeTempDir('synapse-walprimary-')).path;
      await chmod(primaryGone, 0o555);
      const noPrimary = await push(ready[2]!, {BACKUP_LOCATIONS: `primary=local:${primaryGone},offsite=local:${first}`, WAL_ARCHIVE_ACKNOWLEDGE: 'primary'}, false);
      expect(noPrimary.exitCode, noPrimary.stderr).to.equal(7);
      expect(noPrimary.stderr).to.include("location 'primary'");

      // Status counts what the offsite location lacks; backup sync copies it there.
      const status = async (): Promise<{locations: Array<{name: string; wal?: {missing?: number; newest?: string}}>; problems: Array<{id: string}>}> => {
        const run = await runCli(['status', '--json'], {cwd: cluster.data, env: {...env, ...everywhere, PGHOST: '127.0.0.1', PGPORT: String(cluster.port), PGUSER: 'postgres', PGDATABASE: 'postgres'}});
        return JSON.parse(run.stdout).result ?? JSON.parse(run.stdout).error?.details;
      };
      const behind = await status();
      const offsite = behind.locations.find((location) => location.name === 'offsite')!;
      expect(offsite.wal?.missing).to.equal(stored.length);
      expect(behind.problems.map((problem) => problem.id)).to.include('wal_behind:offsite');
      await chown(second, uid, gid);
      await chmod(second, 0o700);
      const synced = await launcherAsPostgres(['backup', 'sync'], everywhere);
      expect(synced.exitCode, synced.stderr).to.equal(0);
      expect((await walObjects(second)).sort()).to.deep.equal(stored.sort());
      const caughtUp = await status();
      expect(caughtUp.locations.find((location) => location.name === 'offsite')!.wal?.missing).to.equal(0);
      expect(caughtUp.problems.map((problem) => problem.id)).to.not.include('wal_behind:offsite');

      // A location that opens but cannot take the file: said with primary, a failure by default.
      const copyAtOffsite = walFile(second, stored.find((key) => key.startsWith(`${ready[1]}-`))!);
      await execa('rm', [copyAtOffsite]);
      await chown(path.dirname(copyAtOffsite), 0, 0);
      await chmod(path.dirname(copyAtOffsite), 0o555);
      const partly = await push(ready[1]!, settings);
      expect(partly.exitCode, partly.stderr).to.equal(0);
      expect(JSON.parse(partly.stdout).result.locations.map((entry: {location: string; outcome: string}) => `${entry.location}:${entry.outcome}`)).to.deep.equal(['primary:present', 'offsite:failed']);
      expect((JSON.parse(partly.stdout).warnings as string[]).join('\n')).to.include(`'${ready[1]}' is archived at the primary location but not at 'offsite'`);
      expect((await push(ready[1]!, everywhere)).exitCode, 'by default').to.not.equal(0);
      await chown(path.dirname(copyAtOffsite), uid, gid);
      await chmod(path.dirname(copyAtOffsite), 0o700);

      // Other content under the file's name at the other location is still a conflict, never a warning.
      const altered = await segmentCopy(ready[1]!, (bytes) => {
        bytes[4096] = bytes[4096]! ^ 0xff;
      });
      const plantedPush = await wal(['push', altered, '--pg-data', cluster.data], {BACKUP_DIR: second});
      expect(plantedPush.exitCode, plantedPush.stderr).to.equal(0);
      await execa('chown', ['-R', `${uid}:${gid}`, second]);
      const conflicting = await push(ready[1]!, settings);
      expect(conflicting.exitCode, conflicting.stdout).to.equal(17);

      await resumeArchiving();
      await waitFor(async () => (await cluster.psql("select count(*) from pg_ls_dir('pg_wal/archive_status') as f where f like '%.ready'")) === '0', 'the archiver to catch up');
    });

    it("believes no acknowledgement but the server user's own for that very file, even in a spool others can write to", async function () {
      const ready = await backlog();
      expect((await launcherAsPostgres(['wal', 'push', path.join('pg_wal', ready[0]!)])).exitCode).to.equal(0);
      const [, second, third, fourth] = ready as [string, string, string, string];
      for (const name of [second, third]) {
        for (const key of (await walObjects(archive)).filter((object) => object.startsWith(`${name}-`))) await execa('rm', [walFile(archive, key)]);
      }
      const acknowledgementOf = (name: string): string => path.join(spool(), `${name}.ok`);
      const genuine = await readFile(acknowledgementOf(second), 'utf8');
      await chmod(spool(), 0o733);
      try {
        // Another user's file with the right words under the second's name (written where that user
        // can, then moved in: the data directory keeps others out, a spool of WAL_SPOOL_DIR may not)...
        await rm(acknowledgementOf(second));
        const theirs = (await makeTempDir('synapse-planted-ack-')).path;
        await chmod(theirs, 0o777);
        // Writable by all: emptying it when used would not fail and give it away.
        await execa('runuser', ['-u', 'nobody', '--', 'sh', '-c', 'cat > "$1" && chmod 666 "$1"', 'sh', path.join(theirs, 'ack')], {input: genuine});
        await execa('mv', [path.join(theirs, 'ack'), acknowledgementOf(second)]);
        expect((await stat(acknowledgementOf(second))).uid).to.not.equal(postgresUser().uid);
        // ...and moves the fourth's genuine acknowledgement to the third's.
        await rm(acknowledgementOf(third));
        await rename(acknowledgementOf(fourth), acknowledgementOf(third));
        for (const name of [second, third]) {
          const pushed = await launcherAsPostgres(['wal', 'push', path.join('pg_wal', name)]);
          expect(pushed.exitCode, pushed.stderr).to.equal(0);
          // The push that followed archived it, and said that the spool is not private.
          expect(pushed.stderr, name).to.include('is not a directory of this user');
          expect((await walObjects(archive)).some((key) => key.startsWith(`${name}-`)), `${name} archived, not answered`).to.equal(true);
        }
      } finally {
        await chmod(spool(), 0o700);
      }
      await resumeArchiving();
      await waitFor(async () => (await cluster.psql("select count(*) from pg_ls_dir('pg_wal/archive_status') as f where f like '%.ready'")) === '0', 'the archiver to catch up');
    });
  });

  describe('at a local directory and Ceph radosgw at once', function () {
    let server: S3Endpoint;

    before(async function () {
      server = await startS3Server('radosgw');
    });

    after(async function () {
      await server?.stop();
    });

    it('stores each file at both, holds it once, refuses other content at either, and fetches from radosgw when the local copy is gone', async function () {
      const [segment] = await archivedSegments();
      const local = (await makeTempDir('synapse-wals3-')).path;
      const prefix = `wal-${Date.now()}`;
      const locations = {
        BACKUP_LOCATIONS: `primary=local:${local},offsite=s3://${server.bucket}/${prefix}/?endpoint=${encodeURIComponent(server.endpoint)}&force-path-style=true`,
        AWS_ACCESS_KEY_ID: server.accessKey,
        AWS_SECRET_ACCESS_KEY: server.secretKey,
      };
      const pushed = await wal(['push', path.join('pg_wal', segment!), '--json'], locations);
      expect(pushed.exitCode, pushed.stderr).to.equal(0);
      expect(pushed.json.result.locations.map((entry: {location: string; outcome: string}) => `${entry.location}:${entry.outcome}`)).to.deep.equal(['primary:stored', 'offsite:stored']);
      const again = await wal(['push', path.join('pg_wal', segment!), '--json'], locations);
      expect(again.json.result.locations.map((entry: {outcome: string}) => entry.outcome)).to.deep.equal(['present', 'present']);
      const changed = await segmentCopy(segment!, (bytes) => (bytes[8192] ^= 0x10));
      const conflicting = await wal(['push', changed, '--pg-data', cluster.data], locations);
      expect(conflicting.exitCode, conflicting.stderr).to.equal(17);

      // The local copy gone: the next location gives it, checked.
      await execa('rm', ['-rf', path.join(local, 'wal')]);
      const scratch = (await makeTempDir('synapse-walfetch-')).path;
      const fetched = await wal(['fetch', segment!, path.join(scratch, 'a'), '--json'], locations);
      expect(fetched.exitCode, fetched.stderr).to.equal(0);
      expect(fetched.json.result.location).to.equal('offsite');
      expect((await readFile(path.join(scratch, 'a'))).equals(await readFile(path.join(cluster.data, 'pg_wal', segment!)))).to.equal(true);
      const missing = await wal(['fetch', '00000001000000FF000000FE', path.join(scratch, 'b')], locations);
      expect(missing.exitCode).to.equal(16);
      expect(missing.stderr).to.equal('');
    });
  });

  it('backup sync copies to a location the archived files it lacks, checked at both ends, and refuses what is not authentic', async function () {
    const segments = (await archivedSegments()).slice(0, 3);
    const primary = (await makeTempDir('synapse-walsync-')).path;
    const offsite = (await makeTempDir('synapse-walsync-')).path;
    for (const segment of segments) expect((await wal(['push', path.join('pg_wal', segment)], {BACKUP_DIR: primary})).exitCode).to.equal(0);
    // A planted file for another segment at the primary: not copied, named.
    const planted = `00000001000000EE00000001-${'ab'.repeat(32)}.zst.enc`;
    await copyFile(walFile(primary, (await walObjects(primary))[0]!), await plantedWalFile(primary, planted));
    const locations = {BACKUP_LOCATIONS: `primary=local:${primary},offsite=local:${offsite}`};
    const dry = await runCli(['backup', 'sync', '--dry-run', '--json'], {cwd: home.path, env: {...env, ...locations}});
    expect(dry.exitCode, dry.stdout + dry.stderr).to.equal(15);
    expect(dry.json.error.details.wal.find((area: {location: string}) => area.location === 'offsite').copied).to.deep.equal(segments);
    expect(await walObjects(offsite)).to.deep.equal([]);
    const synced = await runCli(['backup', 'sync', '--json'], {cwd: home.path, env: {...env, ...locations}});
    expect(synced.exitCode, synced.stdout + synced.stderr).to.equal(15);
    const area = synced.json.error.details.wal.find((entry: {location: string}) => entry.location === 'offsite');
    expect(area.copied).to.deep.equal(segments);
    expect(area.refused.map((refusal: {key: string}) => refusal.key)).to.deep.equal([`primary:wal/${planted}`]);
    expect(await walObjects(offsite)).to.deep.equal((await walObjects(primary)).filter((key) => key !== planted));
    expect(await readFile(path.join(offsite, 'wal', 'archive.json'), 'utf8')).to.equal(await readFile(path.join(primary, 'wal', 'archive.json'), 'utf8'));
    // The offsite copy alone restores the segment.
    const scratch = (await makeTempDir('synapse-walfetch-')).path;
    const fetched = await wal(['fetch', segments[1]!, path.join(scratch, 'a')], {BACKUP_DIR: offsite});
    expect(fetched.exitCode, fetched.stderr).to.equal(0);
    expect((await readFile(path.join(scratch, 'a'))).equals(await readFile(path.join(cluster.data, 'pg_wal', segments[1]!)))).to.equal(true);
    await execa('rm', [walFile(primary, planted)]);
    const again = await runCli(['backup', 'sync', '--json'], {cwd: home.path, env: {...env, ...locations}});
    expect(again.exitCode, again.stdout + again.stderr).to.equal(0);
    expect(again.json.result.wal.map((entry: {copied: string[]}) => entry.copied.length)).to.deep.equal([0, 0]);
  });

  it('backup sync takes a file held under another tag elsewhere for that file, and other content for a conflict', async function () {
    const segments = (await archivedSegments()).slice(0, 3);
    const primary = (await makeTempDir('synapse-walsync-')).path;
    const offsite = (await makeTempDir('synapse-walsync-')).path;
    // The primary holds two of them as an earlier version stored them; the offsite location as this one does.
    expect((await wal(['push', path.join('pg_wal', segments[2]!)], {BACKUP_DIR: primary})).exitCode).to.equal(0);
    for (const segment of segments.slice(0, 2)) await storeFormatOneCopy(primary, segment);
    for (const segment of segments) expect((await wal(['push', path.join('pg_wal', segment)], {BACKUP_DIR: offsite})).exitCode).to.equal(0);
    const [atPrimary, atOffsite] = [await walObjects(primary), await walObjects(offsite)];
    expect(atPrimary.filter((key) => atOffsite.includes(key))).to.have.length(1);
    const locations = {BACKUP_LOCATIONS: `primary=local:${primary},offsite=local:${offsite}`};
    const synced = await runCli(['backup', 'sync', '--json'], {cwd: home.path, env: {...env, ...locations}});
    expect(synced.exitCode, synced.stdout + synced.stderr).to.equal(0);
    expect(synced.json.result.wal.map((area: {copied: string[]; refused: unknown[]}) => [area.copied.length, area.refused.length])).to.deep.equal([
      [0, 0],
      [0, 0],
    ]);
    expect([await walObjects(primary), await walObjects(offsite)]).to.deep.equal([atPrimary, atOffsite]);
    // Status compares the locations by key, without decoding: a name alone, which anyone who can
    // write to one location can plant, never hides a file it lacks. So it warns here (fail closed).
    const status = await runCli(['status', '--json'], {cwd: home.path, env: {...env, ...locations, DATABASE_URL: cluster.url('postgres', 'postgres')}});
    const report = status.json.result ?? status.json.error?.details;
    expect(report.locations.map((location: {wal?: {missing: number}}) => location.wal?.missing)).to.deep.equal([2, 2]);

    // Other content under one of those names elsewhere: reported, never joined.
    const other = (await makeTempDir('synapse-walsync-')).path;
    const changed = await segmentCopy(segments[0]!, (bytes) => (bytes[8192] ^= 0xff));
    expect((await wal(['push', changed, '--pg-data', cluster.data], {BACKUP_DIR: other})).exitCode).to.equal(0);
    const conflicting = await runCli(['backup', 'sync', '--json'], {cwd: home.path, env: {...env, BACKUP_LOCATIONS: `primary=local:${primary},other=local:${other}`}});
    expect(conflicting.exitCode, conflicting.stdout + conflicting.stderr).to.equal(15);
    const area = conflicting.json.error.details.wal.find((entry: {location: string}) => entry.location === 'other');
    expect(area.refused.map((refusal: {key: string; reason: string}) => [refusal.key, refusal.reason.includes('other content')])).to.deep.include([`wal/${atPrimary.find((key) => key.startsWith(`${segments[0]}-`))}`, true]);
    expect(area.copied).to.deep.equal(segments.slice(1));
  });

  it("backup sync copies nothing into a location that is another cluster's archive", async function () {
    const [segment] = await archivedSegments();
    const primary = (await makeTempDir('synapse-walsync-')).path;
    const other = (await makeTempDir('synapse-walsync-')).path;
    expect((await wal(['push', path.join('pg_wal', segment!)], {BACKUP_DIR: primary})).exitCode).to.equal(0);
    const identity = JSON.parse(await readFile(path.join(primary, 'wal', 'archive.json'), 'utf8'));
    await mkdir(path.join(other, 'wal'), {mode: 0o700});
    await writeFile(walFile(other, 'archive.json'), JSON.stringify({...identity, systemIdentifier: '1234'}));
    const synced = await runCli(['backup', 'sync', '--json'], {cwd: home.path, env: {...env, BACKUP_LOCATIONS: `primary=local:${primary},other=local:${other}`}});
    expect(synced.exitCode, synced.stdout + synced.stderr).to.equal(15);
    const area = synced.json.error.details.wal.find((entry: {location: string}) => entry.location === 'other');
    expect(area.failures[0]).to.include("the cluster 1234's");
    expect(await walObjects(other)).to.deep.equal([]);
  });

  describe('status', function () {
    const statusOf = async (extra: Record<string, string | undefined> = {}) => {
      const result = await runCli(['status', '--json'], {cwd: home.path, env: {...env, DATABASE_URL: cluster.url('postgres', 'postgres'), ...extra}});
      expect(result.json, result.stdout + result.stderr).to.not.equal(undefined);
      return result.json.result;
    };
    const archiveProblems = (result: {problems: Array<{id: string; level: string; alert: string}>}) => result.problems.filter((problem) => problem.id.startsWith('archive_'));

    it('reports the newest authentic segment and what the server says, and no problem while archiving keeps up', async function () {
      const result = await statusOf();
      expect(result.archive.newest.file).to.equal(await cluster.psql('select last_archived_wal from pg_stat_archiver'));
      expect(result.archive.server.pendingSegments).to.equal(0);
      expect(result.archive.files).to.be.at.least((await archivedSegments()).length);
      expect(archiveProblems(result)).to.deep.equal([]);
      const metrics = await runCli(['status', '--format', 'prometheus'], {cwd: home.path, env: {...env, DATABASE_URL: cluster.url('postgres', 'postgres')}});
      expect(metrics.stdout).to.match(/^synapse_backup_wal_last_archived_timestamp_seconds \d+/m);
      expect(metrics.stdout).to.match(/^synapse_backup_wal_pending_segments 0$/m);
      expect(metrics.stdout).to.match(/^synapse_backup_wal_ready_files 0$/m);
    });

    it('takes no planted segment for progress: a newer file that is not authentic is named, the newest authentic one reported', async function () {
      const genuine = (await statusOf()).archive.newest.file;
      const planted = `000000010000000F000000FF-${'ef'.repeat(32)}.zst.enc`;
      const genuineKey = (await walObjects(archive)).find((key) => key.startsWith(`${genuine}-`))!;
      await copyFile(walFile(archive, genuineKey), await plantedWalFile(archive, planted));
      try {
        const result = await statusOf();
        expect(result.archive.newest.file).to.equal(genuine);
        expect(archiveProblems(result).map((problem) => `${problem.id}:${problem.level}`)).to.include('archive_unauthentic:warning');
        expect(archiveProblems(result)[0].alert).to.equal('alert.archive_lag');
      } finally {
        await execa('rm', [walFile(archive, planted)]);
      }
    });

    it('is critical when the archiver fails and WAL waits, and warns on age alone when the server cannot be asked', async function () {
      await cluster.psql("alter system set archive_command = 'false'");
      await cluster.psql('select pg_reload_conf()');
      try {
        await cluster.psql('create table if not exists lag(x text); insert into lag select repeat(md5(g::text), 20) from generate_series(1, 30000) g');
        await cluster.psql('select pg_switch_wal()');
        await waitFor(async () => (await cluster.psql('select last_failed_time > coalesce(last_archived_time, last_failed_time - interval \'1s\') from pg_stat_archiver')) === 't', 'the archiver to fail');
        const failing = await statusOf({BACKUP_ALERT_WAL_AGE_WARNING: '1s', BACKUP_ALERT_WAL_AGE_CRITICAL: '1h'});
        expect(failing.archive.server.pendingSegments, JSON.stringify(failing.archive.server)).to.be.greaterThan(0);
        // On the server's host, what waits is also counted where the archiver sees it.
        expect(failing.archive.server.readyFiles, JSON.stringify(failing.archive.server)).to.be.greaterThan(0);
        expect(archiveProblems(failing).map((problem) => `${problem.id}:${problem.level}`)).to.include.members(['archive_failing:critical', 'archive_lag:warning']);
        expect(failing.level).to.equal('critical');
        const unasked = await statusOf({DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/postgres', BACKUP_ALERT_WAL_AGE_WARNING: '1s'});
        expect(unasked.archive.server.unavailable).to.include('unable to ask about WAL archiving');
        const lag = archiveProblems(unasked).find((problem) => problem.id === 'archive_lag')!;
        expect(lag.level).to.equal('warning');
      } finally {
        await cluster.psql('alter system reset archive_command');
        await cluster.psql('select pg_reload_conf()');
        await waitFor(async () => (await cluster.psql("select count(*) from pg_ls_dir('pg_wal/archive_status') as f where f like '%.ready'")) === '0', 'the archiver to catch up');
      }
    });
  });
});
