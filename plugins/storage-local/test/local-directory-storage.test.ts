import {expect} from 'chai';
import {execa} from 'execa';
import {chmod, mkdtemp, readdir, rm, stat, symlink, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {Readable} from 'node:stream';
import {pathToFileURL} from 'node:url';

import {PROJECT_ROOT} from '../../../test/helpers/cli.js';
import {mountTmpfs, remountReadOnly, unmount} from '../../../test/helpers/mounts.js';
import {LocalDirectoryStorage} from '../src/local-directory-storage.js';

describe('local directory storage', function () {
  let directory: string;

  beforeEach(async function () {
    directory = await mkdtemp(path.join(tmpdir(), 'synapse-local-'));
  });

  afterEach(async function () {
    await rm(directory, {recursive: true, force: true});
  });

  it('refuses to write a staging file that is not on the expected device (a dropped mount), leaving nothing', async function () {
    const elsewhere = (await stat('/proc')).dev;
    const storage = await LocalDirectoryStorage.open(path.join(directory, 'backups'), 'read-write', {create: true, device: elsewhere});
    let failure: NodeJS.ErrnoException | undefined;
    await storage.put('backup', Readable.from([Buffer.from('data')])).catch((error) => (failure = error));
    expect(failure?.code).to.equal('ENOTMOUNTED');
    expect(await readdir(storage.location)).to.deep.equal([]);
  });

  it('publishes without hard links when told to, refusing to replace after a look, and declares no conditional put', async function () {
    const storage = await LocalDirectoryStorage.open(path.join(directory, 'backups'), 'read-write', {create: true, hardLinks: false});
    expect(storage.capabilities.conditionalPut).to.equal(false);
    await storage.put('once', Readable.from([Buffer.from('original')]), {ifNotExists: true});
    let failure: NodeJS.ErrnoException | undefined;
    await storage.put('once', Readable.from([Buffer.from('again')]), {ifNotExists: true}).catch((error) => (failure = error));
    expect(failure?.code).to.equal('EEXIST');
    expect(await readdir(storage.location)).to.deep.equal(['once']);
  });

  it('removes what a failed put staged, leaving the directory as it was', async function () {
    const storage = await LocalDirectoryStorage.open(path.join(directory, 'backups'), 'read-write', {create: true});
    const failing = new Readable({
      read() {
        this.destroy(new Error('source failed'));
      },
    });
    await storage.put('broken', failing).catch(() => {});
    expect(await readdir(storage.location)).to.deep.equal([]);
  });

  it('creates the backup directory 0700 and private objects 0600', async function () {
    const storage = await LocalDirectoryStorage.open(path.join(directory, 'nested', 'backups'), 'read-write', {create: true});
    expect((await stat(storage.location)).mode & 0o777).to.equal(0o700);
    await storage.put('secret', Readable.from([Buffer.from('x')]), {private: true});
    expect((await stat(path.join(storage.location, 'secret'))).mode & 0o777).to.equal(0o600);
  });

  it('lists staging files of a put in progress with the .partial suffix', async function () {
    const storage = await LocalDirectoryStorage.open(directory);
    const body = new Readable({
      read() {},
    });
    body.push(Buffer.from('partial data'));
    const putting = storage.put('object', body);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const during = await readdir(directory);
    expect(during).to.have.length(1);
    expect(during[0]).to.match(/^object\.[0-9a-f]{12}\.partial$/);
    expect(await storage.stat('object')).to.equal(undefined);
    body.push(null);
    await putting;
    expect(await readdir(directory)).to.deep.equal(['object']);
  });

  it('treats a symbolic link under a key as no object, revealing nothing of its target', async function () {
    const storage = await LocalDirectoryStorage.open(directory);
    await writeFile(path.join(directory, 'target'), 'secret bytes');
    await symlink(path.join(directory, 'target'), path.join(directory, 'link'));
    expect(await storage.stat('link')).to.equal(undefined);
    expect((await storage.list()).map((object) => object.key)).to.deep.equal(['target']);
    const failure = await storage.get('link').then(() => undefined, (error: unknown) => error as NodeJS.ErrnoException);
    expect(failure?.code).to.equal('ENOENT');
    expect(failure?.message).to.include('not a regular file').and.not.include('target');
  });

  it('maps an area to a directory of its own, 0700, and never follows a symbolic link planted as one', async function () {
    const storage = await LocalDirectoryStorage.open(directory);
    await storage.put('wal/000000010000000000000001', Readable.from([Buffer.from('segment')]));
    expect(await readdir(path.join(directory, 'wal'))).to.deep.equal(['~0000000100000000']);
    expect(await readdir(path.join(directory, 'wal', '~0000000100000000'))).to.deep.equal(['000000010000000000000001']);
    for (const area of ['wal', 'wal/~0000000100000000']) expect((await stat(path.join(directory, area))).mode & 0o777).to.equal(0o700);
    const elsewhere = await mkdtemp(path.join(tmpdir(), 'synapse-elsewhere-'));
    try {
      await writeFile(path.join(elsewhere, 'planted'), 'theirs');
      await symlink(elsewhere, path.join(directory, 'history'));
      for (const attempt of [
        () => storage.put('history/00000002.history', Readable.from([Buffer.from('x')])),
        () => storage.get('history/planted'),
        () => storage.stat('history/planted'),
        () => storage.list('history/'),
        () => storage.delete('history/planted'),
      ]) {
        let failure: unknown;
        try {
          await attempt();
        } catch (error) {
          failure = error;
        }
        expect((failure as NodeJS.ErrnoException | undefined)?.code).to.equal('ENOTDIR');
      }
      expect(await readdir(elsewhere)).to.deep.equal(['planted']);
    } finally {
      await rm(elsewhere, {recursive: true, force: true});
    }
  });

  describe('fan-out: long names of an area in directories of their first 16 characters', function () {
    const SEGMENT = 'wal/000000010000000000000005-aa.zst.enc';
    const put = (storage: LocalDirectoryStorage, key: string, text: string, options = {}) => storage.put(key, Readable.from([Buffer.from(text)]), options);
    const read = async (storage: LocalDirectoryStorage, key: string) => {
      const chunks: Buffer[] = [];
      for await (const chunk of await storage.get(key)) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString();
    };
    const keys = (objects: ReadonlyArray<{key: string}>) => objects.map((object) => object.key).sort();

    it('keeps each object in the directory of its first 16 characters, and reads only those a prefix can reach', async function () {
      const storage = await LocalDirectoryStorage.open(directory);
      for (const key of [SEGMENT, 'wal/000000010000000000000006-bb.zst.enc', 'wal/000000020000000000000001-cc.zst.enc', 'wal/archive.json', 'top-level-backup-name']) await put(storage, key, key);
      expect((await readdir(path.join(directory, 'wal'))).sort()).to.deep.equal(['archive.json', '~0000000100000000', '~0000000200000000']);
      expect((await readdir(path.join(directory, 'wal', '~0000000100000000'))).sort()).to.deep.equal(['000000010000000000000005-aa.zst.enc', '000000010000000000000006-bb.zst.enc']);
      expect(await readdir(directory)).to.include('top-level-backup-name');
      expect(keys(await storage.list('wal/'))).to.deep.equal(['wal/000000010000000000000005-aa.zst.enc', 'wal/000000010000000000000006-bb.zst.enc', 'wal/000000020000000000000001-cc.zst.enc', 'wal/archive.json']);
      expect(keys(await storage.list('wal/000000010000000000000005-'))).to.deep.equal([SEGMENT]);
      expect(keys(await storage.list('wal/00000002'))).to.deep.equal(['wal/000000020000000000000001-cc.zst.enc']);
      expect(keys((await storage.listPage({prefix: 'wal/', limit: 2})).objects)).to.deep.equal(['wal/000000010000000000000005-aa.zst.enc', 'wal/000000010000000000000006-bb.zst.enc']);
      // A directory the prefix cannot reach is not read: a lookup of one segment stays one small readdir however big the archive.
      await writeFile(path.join(directory, 'wal', '~0000000200000000', '000000010000000000000005-planted.zst.enc'), 'in the wrong directory');
      expect(keys(await storage.list('wal/000000010000000000000005-'))).to.deep.equal([SEGMENT]);
      // And a name found in another's directory is nobody's object, even in a whole listing.
      expect(keys(await storage.list('wal/'))).to.not.include('wal/000000010000000000000005-planted.zst.enc');
      expect(await read(storage, SEGMENT)).to.equal(SEGMENT);
      await storage.delete(SEGMENT);
      expect(await storage.stat(SEGMENT)).to.equal(undefined);
      expect(await readdir(path.join(directory, 'wal', '~0000000100000000'))).to.deep.equal(['000000010000000000000006-bb.zst.enc']);
    });

    it('reads only the fan-out directory a lookup of one name can reach, whatever else is there', async function () {
      // Observed as an unprivileged user, for whom a directory without permissions cannot be read:
      // the lookup succeeds only if it never opens the other directory.
      const storage = await LocalDirectoryStorage.open(directory);
      for (const key of [SEGMENT, 'wal/000000020000000000000001-cc.zst.enc']) await put(storage, key, key);
      await chmod(directory, 0o755);
      await execa('chown', ['-R', 'nobody', directory]);
      await chmod(path.join(directory, 'wal', '~0000000200000000'), 0o000);
      const module = pathToFileURL(path.join(PROJECT_ROOT, 'plugins', 'storage-local', 'dist', 'local-directory-storage.js')).href;
      const script = `const {LocalDirectoryStorage} = await import(${JSON.stringify(module)});
        const storage = await LocalDirectoryStorage.open(${JSON.stringify(directory)}, 'read');
        console.log(JSON.stringify((await storage.list(process.argv[1])).map((object) => object.key)));`;
      const lookup = (prefix: string) => execa('runuser', ['-u', 'nobody', '--', process.execPath, '--input-type=module', '-e', script, prefix], {reject: false});
      const found = await lookup('wal/000000010000000000000005-');
      expect(found.exitCode, found.stderr).to.equal(0);
      expect(JSON.parse(found.stdout)).to.deep.equal([SEGMENT]);
      // The whole area does read it, and fails: the check above is not blind.
      expect((await lookup('wal/')).stderr).to.match(/EACCES/);
    });

    it("still finds, refuses to overwrite, replaces and deletes an object an earlier version kept in the area's own directory", async function () {
      const storage = await LocalDirectoryStorage.open(directory);
      await put(storage, 'wal/000000010000000000000004-xx.zst.enc', 'a newer one beside it');
      await writeFile(path.join(directory, 'wal', '000000010000000000000005-aa.zst.enc'), 'from an earlier version');
      expect((await storage.stat(SEGMENT))?.size).to.equal('from an earlier version'.length);
      expect(await read(storage, SEGMENT)).to.equal('from an earlier version');
      expect(keys(await storage.list('wal/000000010000000000000005-'))).to.deep.equal([SEGMENT]);
      let failure: NodeJS.ErrnoException | undefined;
      await put(storage, SEGMENT, 'another', {ifNotExists: true}).catch((error) => (failure = error));
      expect(failure?.code).to.equal('EEXIST');
      expect(await read(storage, SEGMENT)).to.equal('from an earlier version');
      // A replacing put leaves one copy, the new one: the old one never comes back.
      await put(storage, SEGMENT, 'replaced');
      expect(await readdir(path.join(directory, 'wal'))).to.not.include('000000010000000000000005-aa.zst.enc');
      expect(await read(storage, SEGMENT)).to.equal('replaced');
      expect(keys(await storage.list('wal/'))).to.deep.equal(['wal/000000010000000000000004-xx.zst.enc', SEGMENT]);
      await writeFile(path.join(directory, 'wal', '000000010000000000000005-aa.zst.enc'), 'from an earlier version');
      await storage.delete(SEGMENT);
      expect(await storage.stat(SEGMENT)).to.equal(undefined);
      expect(await readdir(path.join(directory, 'wal'))).to.deep.equal(['~0000000100000000']);
    });

    it('never follows a symbolic link planted as a fan-out directory', async function () {
      const storage = await LocalDirectoryStorage.open(directory);
      await put(storage, 'wal/archive.json', 'identity');
      const elsewhere = await mkdtemp(path.join(tmpdir(), 'synapse-elsewhere-'));
      try {
        await writeFile(path.join(elsewhere, '000000010000000000000005-aa.zst.enc'), 'theirs');
        await symlink(elsewhere, path.join(directory, 'wal', '~0000000100000000'));
        expect(await storage.stat(SEGMENT)).to.equal(undefined);
        expect(keys(await storage.list('wal/'))).to.deep.equal(['wal/archive.json']);
        const codeOf = (attempt: Promise<unknown>) => attempt.then(() => undefined, (error: NodeJS.ErrnoException) => error.code);
        expect(await codeOf(storage.get(SEGMENT))).to.equal('ENOENT');
        expect(await codeOf(put(storage, 'wal/000000010000000000000006-bb.zst.enc', 'ours'))).to.equal('ENOTDIR');
        await storage.delete(SEGMENT);
        expect((await readdir(elsewhere)).sort()).to.deep.equal(['000000010000000000000005-aa.zst.enc']);
      } finally {
        await rm(elsewhere, {recursive: true, force: true});
      }
    });
  });

  it("aborts the staging files a killed put left in an area, older than asked, and nothing else", async function () {
    const storage = await LocalDirectoryStorage.open(directory);
    await storage.put('wal/000000010000000000000001', Readable.from([Buffer.from('segment')]));
    // Older than an hour: no writer to an area (which takes no storage lock) is still at it.
    const old = new Date(Date.now() - 2 * 3_600_000);
    const {utimes} = await import('node:fs/promises');
    const files = {
      stale: path.join(directory, 'wal', '000000010000000000000002.0123456789ab.partial'),
      staleFannedOut: path.join(directory, 'wal', '~0000000100000000', '000000010000000000000004.0123456789ae.partial'),
      fresh: path.join(directory, 'wal', '000000010000000000000003.0123456789ac.partial'),
      foreign: path.join(directory, 'wal', 'notes.partial'),
      top: path.join(directory, 'backup_x.0123456789ad.partial'),
    };
    for (const file of Object.values(files)) await writeFile(file, 'x');
    for (const file of [files.stale, files.staleFannedOut, files.foreign, files.top]) await utimes(file, old, old);
    // Half an hour old: younger than the hour, kept although the caller's cut-off is later.
    const recent = new Date(Date.now() - 1_800_000);
    await utimes(files.fresh, recent, recent);
    const cutoff = new Date();
    expect(await storage.abortStaleUploads(cutoff, {dryRun: true})).to.have.length(2);
    expect(await readdir(path.join(directory, 'wal'))).to.include('000000010000000000000002.0123456789ab.partial');
    const aborted = (await storage.abortStaleUploads(cutoff)).sort();
    expect(aborted).to.have.length(2);
    expect(aborted[0]).to.match(/^wal\/000000010000000000000002\.0123456789ab\.partial \(begun /);
    // One in a fan-out directory is named by its key, in the area.
    expect(aborted[1]).to.match(/^wal\/000000010000000000000004\.0123456789ae\.partial \(begun /);
    expect((await readdir(path.join(directory, 'wal'))).sort()).to.deep.equal(['000000010000000000000003.0123456789ac.partial', 'notes.partial', '~0000000100000000']);
    expect(await readdir(path.join(directory, 'wal', '~0000000100000000'))).to.deep.equal(['000000010000000000000001']);
    expect(await readdir(directory)).to.include('backup_x.0123456789ad.partial');
  });

  it('rejects keys that would escape the directory', async function () {
    const storage = await LocalDirectoryStorage.open(directory);
    for (const key of ['../evil', 'a/../../evil', '..', '', '/etc/evil', 'a//b', 'a/', 'a\\b', 'a b']) {
      let failure: unknown;
      try {
        await storage.put(key, Readable.from([Buffer.from('x')]));
      } catch (error) {
        failure = error;
      }
      expect((failure as NodeJS.ErrnoException).code, key).to.equal('EINVAL');
    }
  });

  it('opens for reading without creating the directory, and on a read-only file system', async function () {
    let failure: unknown;
    try {
      await LocalDirectoryStorage.open(path.join(directory, 'missing'), 'read');
    } catch (error) {
      failure = error;
    }
    expect((failure as NodeJS.ErrnoException).code).to.equal('ENOENT');
    expect(await readdir(directory)).to.deep.equal([]);

    const mountPoint = path.join(directory, 'readonly');
    const {mkdir} = await import('node:fs/promises');
    await mkdir(mountPoint);
    await mountTmpfs(mountPoint, {sizeBytes: 1024 * 1024});
    try {
      await (await LocalDirectoryStorage.open(mountPoint)).put('kept', Readable.from([Buffer.from('data')]));
      await remountReadOnly(mountPoint, true);
      const storage = await LocalDirectoryStorage.open(mountPoint, 'read');
      expect((await storage.list()).map((object) => object.key)).to.deep.equal(['kept']);
      expect(Buffer.concat(await (await storage.get('kept')).toArray()).toString()).to.equal('data');
    } finally {
      await unmount(mountPoint);
    }
  });

  it('refuses a directory on a read-only file system (EROFS)', async function () {
    const mountPoint = path.join(directory, 'readonly');
    const {mkdir} = await import('node:fs/promises');
    await mkdir(mountPoint);
    await mountTmpfs(mountPoint, {sizeBytes: 1024 * 1024, readOnly: true});
    try {
      let failure: unknown;
      try {
        await LocalDirectoryStorage.open(mountPoint);
      } catch (error) {
        failure = error;
      }
      expect((failure as NodeJS.ErrnoException).code).to.equal('EROFS');
    } finally {
      await unmount(mountPoint);
    }
  });
});
