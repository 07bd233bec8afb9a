import {expect} from 'chai';
import {execa} from 'execa';
import {chmod, chown, copyFile, mkdir, readdir, rename, rm, symlink, truncate, utimes, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {acknowledgedPush} from '../../src/cli/wal/acknowledged-push.js';
import {
  acknowledge,
  acknowledgementMatches,
  awaitPending,
  boundLocations,
  filesToPushAhead,
  identityIsLive,
  markPending,
  prepareSpool,
  processIdentity,
  pruneAcknowledgements,
  readyFiles,
  spoolDirectoryOf,
} from '../../src/core/wal/index.js';
import {makeTempDir} from '../helpers/temp.js';

describe('WAL push acknowledgements', function () {
  const cases: Array<[string, Record<string, string>, Record<string, string>, string | undefined]> = [
    ['nothing set', {}, {}, 'v2||||'],
    ['one directory', {BACKUP_DIR: '/var/backups/pg'}, {}, 'v2|||/var/backups/pg|'],
    ['locations and storage', {BACKUP_LOCATIONS: 'a=local:/x,b=s3://b/p', BACKUP_STORAGE: 's3'}, {}, 'v2|a=local:/x,b=s3://b/p|s3||'],
    ['a line break', {BACKUP_DIR: '/x\n/y'}, {}, undefined],
    ['a location from ./.env, which the launcher does not read', {}, {BACKUP_DIR: '/x'}, undefined],
    ['./.env overridden by the environment', {BACKUP_DIR: '/y'}, {BACKUP_DIR: '/x'}, 'v2|||/y|'],
    ['acknowledged once the primary holds a file', {BACKUP_LOCATIONS: 'a=local:/x,b=local:/y', WAL_ARCHIVE_ACKNOWLEDGE: 'primary'}, {}, 'v2|a=local:/x,b=local:/y|||primary'],
    ['WAL_ARCHIVE_ACKNOWLEDGE from ./.env, which the launcher does not read', {BACKUP_DIR: '/x'}, {WAL_ARCHIVE_ACKNOWLEDGE: 'primary'}, undefined],
  ];
  for (const [what, processEnv, dotenv, expected] of cases) {
    it(`binds the spool to the locations: ${what}`, function () {
      expect(boundLocations(processEnv, dotenv)).to.equal(expected);
    });
  }

  it('puts the spool in pg_wal, or where WAL_SPOOL_DIR says; nowhere for a file outside a pg_wal', function () {
    expect(spoolDirectoryOf('pg_wal/000000010000000000000001', undefined)).to.equal(path.resolve('pg_wal/synapse-backup-spool'));
    expect(spoolDirectoryOf('/tmp/000000010000000000000001', undefined)).to.equal(undefined);
    expect(spoolDirectoryOf('/tmp/000000010000000000000001', '/var/spool/x')).to.equal('/var/spool/x');
  });

  async function setUp() {
    const root = (await makeTempDir('synapse-ack-')).path;
    const pgWal = path.join(root, 'pg_wal');
    await mkdir(path.join(pgWal, 'archive_status'), {recursive: true});
    const spool = path.join(pgWal, 'synapse-backup-spool');
    const file = path.join(pgWal, '000000010000000000000003');
    await writeFile(file, 'wal');
    await utimes(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    return {root, pgWal, spool, file};
  }

  it('holds an acknowledgement for the same file at the same locations only', async function () {
    const {spool, file} = await setUp();
    const bound = boundLocations({BACKUP_DIR: '/a'})!;
    expect(await prepareSpool(spool, bound)).to.equal(undefined);
    expect(acknowledgementMatches(spool, file, bound), 'before').to.equal(false);
    await acknowledge(spool, file, 'wal/key', bound);
    expect(acknowledgementMatches(spool, file, bound)).to.equal(true);
    expect(acknowledgementMatches(spool, file, boundLocations({BACKUP_DIR: '/b'})), 'other locations').to.equal(false);
    expect(acknowledgementMatches(spool, file, boundLocations({BACKUP_DIR: '/a', WAL_ARCHIVE_ACKNOWLEDGE: 'primary'})), 'another acknowledgement rule').to.equal(false);
    expect(acknowledgementMatches(spool, file, undefined), 'locations that cannot be compared').to.equal(false);
    await utimes(file, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));
    expect(acknowledgementMatches(spool, file, bound), 'written since').to.equal(false);
  });

  it('drops the acknowledgements when the locations change, and refuses a spool others can write to', async function () {
    const {spool, file} = await setUp();
    await prepareSpool(spool, boundLocations({BACKUP_DIR: '/a'})!);
    await acknowledge(spool, file, 'wal/key', boundLocations({BACKUP_DIR: '/a'})!);
    await prepareSpool(spool, boundLocations({BACKUP_DIR: '/b'})!);
    expect((await readdir(spool)).filter((entry) => entry.endsWith('.ok'))).to.deep.equal([]);
    await chmod(spool, 0o770);
    expect(await prepareSpool(spool, boundLocations({BACKUP_DIR: '/b'})!)).to.include('is not a directory of this user');
  });

  it('answers `wal push` before the CLI loads only for an acknowledged file, and only once', async function () {
    const {root, spool, file} = await setUp();
    const env = {BACKUP_DIR: '/a', WAL_SPOOL_DIR: path.join(root, 'custom-spool')};
    const custom = env.WAL_SPOOL_DIR;
    await prepareSpool(custom, boundLocations(env)!);
    expect(await acknowledgedPush([file], env), 'not acknowledged').to.equal(false);
    await acknowledge(custom, file, 'wal/key', boundLocations(env)!);
    expect(await acknowledgedPush([file, '--json'], env), 'with flags: the CLI answers').to.equal(false);
    expect(await acknowledgedPush([file], {...env, BACKUP_DIR: '/b'}), 'other locations').to.equal(false);
    expect(await acknowledgedPush([file], env)).to.equal(true);
    expect(await acknowledgedPush([file], env), 'used up').to.equal(false);
    expect(spool).to.not.equal(custom);
  });

  it('believes no acknowledgement but its own, for this very file: not another user\'s, not one renamed from another file\'s, not a link, not a used one', async function () {
    const {pgWal, spool, file} = await setUp();
    const bound = boundLocations({BACKUP_DIR: '/a'})!;
    await prepareSpool(spool, bound);
    const other = path.join(pgWal, '000000010000000000000004');
    await writeFile(other, 'wal');
    await utimes(other, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const acknowledgementOf = (walFile: string): string => path.join(spool, `${path.basename(walFile)}.ok`);
    // Renamed from another file's genuine acknowledgement: it names that file.
    await acknowledge(spool, other, 'k', bound);
    await rename(acknowledgementOf(other), acknowledgementOf(file));
    expect(acknowledgementMatches(spool, file, bound), 'renamed').to.equal(false);
    // A copy with the right words, but another user's: in a spool others can write to, they could put it there.
    await acknowledge(spool, file, 'k', bound);
    expect(acknowledgementMatches(spool, file, bound), 'genuine').to.equal(true);
    await chmod(spool, 0o733);
    await chown(acknowledgementOf(file), 65534, 65534);
    expect(acknowledgementMatches(spool, file, bound), "another user's").to.equal(false);
    await chown(acknowledgementOf(file), process.getuid!(), process.getgid!());
    expect(acknowledgementMatches(spool, file, bound), 'its own, in a spool others can write to').to.equal(true);
    await chmod(spool, 0o700);
    // A link to a genuine one.
    await copyFile(acknowledgementOf(file), path.join(spool, 'elsewhere'));
    await rm(acknowledgementOf(file));
    await symlink(path.join(spool, 'elsewhere'), acknowledgementOf(file));
    expect(acknowledgementMatches(spool, file, bound), 'a link').to.equal(false);
    await rm(acknowledgementOf(file));
    // A spool that is a link, or another user's directory.
    await acknowledge(spool, file, 'k', bound);
    const moved = `${spool}-moved`;
    await rename(spool, moved);
    await symlink(moved, spool);
    expect(acknowledgementMatches(spool, file, bound), 'a spool that is a link').to.equal(false);
    await rm(spool);
    await rename(moved, spool);
    await chown(spool, 65534, 65534);
    expect(acknowledgementMatches(spool, file, bound), "another user's spool").to.equal(false);
    await chown(spool, process.getuid!(), process.getgid!());
    expect(acknowledgementMatches(spool, file, bound), 'back as it was').to.equal(true);
    // Used: emptied.
    await rm(acknowledgementOf(file));
    await acknowledge(spool, file, 'k', bound);
    await truncate(acknowledgementOf(file), 0);
    expect(acknowledgementMatches(spool, file, bound), 'used').to.equal(false);
  });

  it('lists the waiting files as the archiver takes them, and prunes what PostgreSQL removed', async function () {
    const {pgWal, spool, file} = await setUp();
    for (const name of ['000000010000000000000004', '00000002.history', '000000010000000000000003']) await writeFile(path.join(pgWal, 'archive_status', `${name}.ready`), '');
    await writeFile(path.join(pgWal, 'archive_status', '000000010000000000000001.done'), '');
    expect(await readyFiles(pgWal)).to.deep.equal(['00000002.history', '000000010000000000000003', '000000010000000000000004']);
    await prepareSpool(spool, 'v2||||');
    await acknowledge(spool, file, 'k', 'v2||||');
    await writeFile(path.join(spool, '000000010000000000000009.ok'), '{}');
    await writeFile(path.join(spool, '000000010000000000000003.ok.123.tmp'), '');
    // Used by the launcher, which empties what it uses.
    await writeFile(path.join(pgWal, '000000010000000000000004'), 'wal');
    await writeFile(path.join(spool, '000000010000000000000004.ok'), '');
    await pruneAcknowledgements(spool, pgWal);
    expect((await readdir(spool)).sort()).to.deep.equal(['000000010000000000000003.ok', 'locations']);
  });

  it('names a push by PID and start time: a later process under the same PID is not it', async function () {
    const identity = processIdentity()!;
    expect(identity).to.match(new RegExp(`^${process.pid} \\d+$`));
    expect(identityIsLive(identity)).to.equal(true);
    const [pid, started] = identity.split(' ');
    expect(identityIsLive(`${pid} ${Number(started) + 1}`), 'another start time').to.equal(false);
    const ended = execa('true');
    const gone = ended.pid!;
    await ended;
    expect(identityIsLive(`${gone} ${started}`), 'a process that ended').to.equal(false);
    expect(identityIsLive('garbage'), 'no identity').to.equal(false);
  });

  it("leaves out of a push the files another running push has in hand, and prunes the marks of pushes that are gone", async function () {
    const {pgWal, spool} = await setUp();
    const names = ['000000010000000000000004', '000000010000000000000005', '000000010000000000000006'];
    for (const name of names) {
      await writeFile(path.join(pgWal, name), 'wal');
      await writeFile(path.join(pgWal, 'archive_status', `${name}.ready`), '');
    }
    const bound = 'v2||||';
    await prepareSpool(spool, bound);
    const other = execa('sleep', ['30'], {reject: false});
    try {
      const {stdout: started} = await execa('sh', ['-c', 'cut -d" " -f22 "/proc/$0/stat"', String(other.pid)]);
      await markPending(spool, [names[0]!], `${other.pid} ${started}`);
      // Gone: the start time of no process under that PID.
      await markPending(spool, [names[1]!], `${other.pid} ${Number(started) + 1}`);
      // This push's own mark does not keep the file from it.
      await markPending(spool, [names[2]!], processIdentity()!);
      expect(await filesToPushAhead(pgWal, '000000010000000000000003', spool, bound, 64)).to.deep.equal(names.slice(1));
      await pruneAcknowledgements(spool, pgWal);
      expect((await readdir(spool)).filter((entry) => entry.endsWith('.pending')).sort()).to.deep.equal([`${names[0]}.pending`, `${names[2]}.pending`]);
      other.kill();
      await other;
      await pruneAcknowledgements(spool, pgWal);
      expect((await readdir(spool)).filter((entry) => entry.endsWith('.pending'))).to.deep.equal([`${names[2]}.pending`]);
    } finally {
      other.kill();
    }
  });

  it('waits for a running push no longer than its deadline', async function () {
    const {spool} = await setUp();
    await prepareSpool(spool, 'v2||||');
    await markPending(spool, ['000000010000000000000004'], processIdentity()!);
    const started = Date.now();
    await awaitPending(spool, '000000010000000000000004', started + 300);
    const waited = Date.now() - started;
    expect(waited).to.be.at.least(290);
    expect(waited).to.be.below(5000);
  });
});
