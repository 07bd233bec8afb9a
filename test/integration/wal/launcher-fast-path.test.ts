import {expect} from 'chai';
import {execa} from 'execa';
import {chmod, chown, mkdir, readFile, rename, rm, stat, symlink, utimes, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
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
