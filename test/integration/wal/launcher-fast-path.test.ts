import {expect} from 'chai';
import {execa} from 'execa';
import {chmod, chown, mkdir, readFile, rename, rm, stat, symlink, utimes, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {waitFor} from '../../helpers/cluster.js';
import {makeTempDir} from '../../helpers/temp.js';

const LAUNCHER = path.join(PROJECT_ROOT, 'bin', 'synapse-backup');
const FILE = '000000010000000000000003';
const OTHER = '000000010000000000000004';

/**
 * The launcher's answer to the archiver's call for a file pushed ahead (bin/synapse-backup), case
 * by case, with nothing but the files it looks at: where it does not answer, the full push runs and
 * fails here (there is no cluster), so exit 0 means the acknowledgement alone answered.
 */
describe('the launcher answers `wal push` from an acknowledgement', function () {
  this.timeout(30_000);

  async function setUp() {
    const root = (await makeTempDir('synapse-launcher-')).path;
    const pgWal = path.join(root, 'pg_wal');
    const spool = path.join(pgWal, 'synapse-backup-spool');
    await mkdir(spool, {recursive: true, mode: 0o700});
    const archive = path.join(root, 'archive');
    const old = new Date(Date.now() - 60_000);
    for (const name of [FILE, OTHER]) {
      await writeFile(path.join(pgWal, name), 'wal');
      await utimes(path.join(pgWal, name), old, old);
    }
    const acknowledgement = path.join(spool, `${FILE}.ok`);
    const words = (name: string): string => `${name}|v2|||${archive}|\n{}\n`;
    await writeFile(acknowledgement, words(FILE), {mode: 0o600});
    const push = () => execa('env', ['-i', `PATH=${process.env.PATH}`, `BACKUP_DIR=${archive}`, LAUNCHER, 'wal', 'push', path.join('pg_wal', FILE)], {cwd: root, reject: false});
    return {root, pgWal, spool, acknowledgement, words, push};
  }

  it('answers for its own, genuine acknowledgement, once, and empties it', async function () {
    const {acknowledgement, push} = await setUp();
    expect((await push()).exitCode).to.equal(0);
    expect((await stat(acknowledgement)).size, 'used up').to.equal(0);
    expect((await push()).exitCode, 'a second time').to.not.equal(0);
  });

  const refusals: Array<[string, (setting: Awaited<ReturnType<typeof setUp>>) => Promise<void>]> = [
    [
      "another user's file with the right words, writable by all",
      async ({acknowledgement}) => {
        await chown(acknowledgement, 65534, 65534);
        await chmod(acknowledgement, 0o666);
      },
    ],
    [
      "another file's genuine acknowledgement, renamed",
      async ({spool, acknowledgement, words}) => {
        await writeFile(path.join(spool, `${OTHER}.ok`), words(OTHER), {mode: 0o600});
        await rename(path.join(spool, `${OTHER}.ok`), acknowledgement);
      },
    ],
    [
      "a link to a file of this user's whose first line says the right words (a log someone else can write into, say)",
      async ({root, acknowledgement, words}) => {
        const elsewhere = path.join(root, 'elsewhere');
        await writeFile(elsewhere, words(FILE));
        await rm(acknowledgement);
        await symlink(elsewhere, acknowledgement);
      },
    ],
    [
      'a spool that is a link to a directory with a genuine acknowledgement in it',
      async ({root, spool}) => {
        const moved = path.join(root, 'moved-spool');
        await rename(spool, moved);
        await symlink(moved, spool);
      },
    ],
    [
      "a spool of another user's (who could put anything there, and take it away)",
      async ({spool}) => {
        await chown(spool, 65534, 65534);
      },
    ],
    [
      'an acknowledgement made for other locations',
      async ({acknowledgement}) => {
        await writeFile(acknowledgement, `${FILE}|v2|||/elsewhere|\n`, {mode: 0o600});
      },
    ],
    [
      'a WAL file written since its acknowledgement',
      async ({pgWal}) => {
        const later = new Date(Date.now() + 60_000);
        await utimes(path.join(pgWal, FILE), later, later);
      },
    ],
    [
      'a used (emptied) acknowledgement',
      async ({acknowledgement}) => {
        await writeFile(acknowledgement, '', {mode: 0o600});
      },
    ],
  ];
  for (const [what, plant] of refusals) {
    it(`leaves the full push to decide for ${what}`, async function () {
      const setting = await setUp();
      await plant(setting);
      const before = await readFile(setting.acknowledgement, 'utf8').catch(() => undefined);
      expect((await setting.push()).exitCode).to.not.equal(0);
      expect(await readFile(setting.acknowledgement, 'utf8').catch(() => undefined), 'left as it was').to.equal(before);
    });
  }
});

/**
 * The archiver's call for a file that a push still running has in hand (marked pending in the
 * spool with the push's PID and start time): the launcher waits for that push, and what answers
 * is still the acknowledgement alone. The "push" here is a sleeping process named in the mark.
 */
describe('the launcher waits for a push that has the file in hand', function () {
  this.timeout(60_000);

  async function setUp(spoolSetting: 'default spool' | 'WAL_SPOOL_DIR') {
    const root = (await makeTempDir('synapse-launcher-wait-')).path;
    const pgWal = path.join(root, 'pg_wal');
    const spool = spoolSetting === 'default spool' ? path.join(pgWal, 'synapse-backup-spool') : path.join(root, 'spool');
    await mkdir(pgWal);
    await mkdir(spool, {mode: 0o700});
    const archive = path.join(root, 'archive');
    const old = new Date(Date.now() - 60_000);
    await writeFile(path.join(pgWal, FILE), 'wal');
    await utimes(path.join(pgWal, FILE), old, old);
    const pusher = execa('sleep', ['60'], {reject: false});
    const {stdout: started} = await execa('sh', ['-c', 'cut -d" " -f22 "/proc/$0/stat"', String(pusher.pid)]);
    const mark = path.join(spool, `${FILE}.pending`);
    await writeFile(mark, `${pusher.pid} ${started}\n`, {mode: 0o600});
    const acknowledgement = path.join(spool, `${FILE}.ok`);
    const settings = [`PATH=${process.env.PATH}`, `BACKUP_DIR=${archive}`, ...(spoolSetting === 'WAL_SPOOL_DIR' ? [`WAL_SPOOL_DIR=${spool}`] : [])];
    const push = () => execa('env', ['-i', ...settings, LAUNCHER, 'wal', 'push', path.join('pg_wal', FILE)], {cwd: root, reject: false, timeout: 30_000});
    return {root, pusher, started, mark, acknowledgement, archive, push};
  }

  const after = (ms: number): Promise<'waiting'> => new Promise((resolve) => setTimeout(() => resolve('waiting'), ms));

  for (const spoolSetting of ['default spool', 'WAL_SPOOL_DIR'] as const) {
    it(`waits while the push runs, and answers from the acknowledgement it writes (${spoolSetting})`, async function () {
      const {pusher, mark, acknowledgement, archive, push} = await setUp(spoolSetting);
      try {
        const call = push();
        expect(await Promise.race([call.then(() => 'ended'), after(1500)])).to.equal('waiting');
        // With the default spool the launcher itself waits, without starting Node for it.
        const {stdout: nodes} = await execa('pgrep', ['-f', `bin/run.js wal push pg_wal/${FILE}`], {reject: false});
        expect(nodes === '', 'Node started for the wait').to.equal(spoolSetting === 'default spool');
        await writeFile(acknowledgement, `${FILE}|v2|||${archive}|\n{}\n`, {mode: 0o600});
        await rm(mark);
        const answered = await call;
        expect(answered.exitCode, answered.stderr).to.equal(0);
        // Used up: emptied by the shell, removed by Node (WAL_SPOOL_DIR).
        expect((await stat(acknowledgement).catch(() => undefined))?.size ?? 0, 'used up').to.equal(0);
      } finally {
        pusher.kill();
      }
    });

    it(`stops waiting once the push is gone, and leaves the file to the full push (${spoolSetting})`, async function () {
      const {pusher, push} = await setUp(spoolSetting);
      const call = push();
      expect(await Promise.race([call.then(() => 'ended'), after(1500)])).to.equal('waiting');
      pusher.kill('SIGKILL');
      const ended = await call;
      expect(ended.timedOut, 'waited on for a push that is gone').to.equal(false);
      // No cluster here: the full push fails, so a non-zero status says it ran.
      expect(ended.exitCode).to.not.equal(0);
    });
  }

  it('stops waiting after its bound of looks, even while the push runs, and leaves the call to Node', async function () {
    const setting = await setUp('default spool');
    // A `sleep` that does not sleep: the looks, not the time, bound the wait here.
    const bin = (await makeTempDir('synapse-launcher-bin-')).path;
    await symlink('/bin/true', path.join(bin, 'sleep'));
    try {
      const call = execa('env', ['-i', `PATH=${bin}:${process.env.PATH}`, `BACKUP_DIR=${setting.archive}`, LAUNCHER, 'wal', 'push', path.join('pg_wal', FILE)], {
        cwd: setting.root,
        reject: false,
        timeout: 50_000,
      });
      // Past its bound the launcher starts Node, which waits by its own deadline.
      await waitFor(async () => (await execa('pgrep', ['-f', `bin/run.js wal push pg_wal/${FILE}`], {reject: false})).stdout !== '', 'the launcher to stop waiting', 40_000);
      setting.pusher.kill('SIGKILL');
      const ended = await call;
      expect(ended.timedOut).to.equal(false);
      // No cluster here: the full push fails.
      expect(ended.exitCode).to.not.equal(0);
    } finally {
      setting.pusher.kill();
    }
  });

  const passedOver: Array<[string, (setting: Awaited<ReturnType<typeof setUp>>) => Promise<void>]> = [
    ['a mark whose PID is another process now (another start time)', async ({mark, pusher, started}) => writeFile(mark, `${pusher.pid} ${Number(started) + 1}\n`)],
    ["another user's mark", async ({mark}) => chown(mark, 65534, 65534)],
    ['a mark that names no process', async ({mark}) => writeFile(mark, 'gone\n')],
  ];
  for (const [what, plant] of passedOver) {
    it(`does not wait on ${what}`, async function () {
      const setting = await setUp('default spool');
      try {
        await plant(setting);
        const started = Date.now();
        const ended = await setting.push();
        expect(ended.timedOut).to.equal(false);
        expect(ended.exitCode).to.not.equal(0);
        expect(Date.now() - started, 'ended without waiting').to.be.below(10_000);
      } finally {
        setting.pusher.kill();
      }
    });
  }
});
