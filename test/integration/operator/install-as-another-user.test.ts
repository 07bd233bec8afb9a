import {expect} from 'chai';
import {execa} from 'execa';
import {existsSync} from 'node:fs';
import {chmod, mkdtemp, readdir, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {createTestDatabase, seedSampleData} from '../../helpers/database.js';

/** What `npm ci` leaves in /opt/synapse-backup: everything the CLI runs from. */
const INSTALLED = ['bin', 'dist', 'node_modules', '.node-runtime', 'package.json', 'oclif.manifest.json', 'plugins', 'scripts'];

/**
 * The README's install: root runs `npm ci` in a root-owned directory; cron and systemd run the
 * launcher as another user, here `postgres`. Nothing may be built or written in the install at
 * run time.
 */
describe('installed by root, run by another user (runuser -u postgres)', function () {
  this.timeout(180_000);
  let root: string;
  let install: string;
  let home: string;
  let backups: string;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;

  before(async function () {
    root = await mkdtemp(path.join(tmpdir(), 'synapse-install-'));
    await chmod(root, 0o755);
    install = path.join(root, 'opt', 'synapse-backup');
    await execa('mkdir', ['-p', install]);
    const present = INSTALLED.filter((entry) => existsSync(path.join(PROJECT_ROOT, entry)));
    await execa('cp', ['-a', ...present.map((entry) => path.join(PROJECT_ROOT, entry)), install]);
    await execa('chown', ['-R', 'root:root', root]);
    await execa('chmod', ['-R', 'go+rX,go-w', root]);
    home = path.join(root, 'home-postgres');
    backups = path.join(root, 'backups');
    for (const directory of [home, backups]) {
      await execa('mkdir', ['-p', directory]);
      await execa('chown', ['postgres:postgres', directory]);
    }
    database = await createTestDatabase();
    await seedSampleData(database.name, 20);
  });

  after(async function () {
    await database?.drop();
    await rm(root, {recursive: true, force: true});
  });

  function asPostgres(command: string) {
    return execa('runuser', ['-u', 'postgres', '--', 'env', '-i', 'PATH=/usr/local/bin:/usr/bin:/bin', `HOME=${home}`, `DATABASE_URL=${database.url}`, `BACKUP_DIR=${backups}`, 'sh', '-c', command], {
      reject: false,
      cwd: '/',
    });
  }

  async function installSnapshot(): Promise<string> {
    return (await execa('find', [install, '-path', `${install}/node_modules`, '-prune', '-o', '-path', `${install}/.node-runtime`, '-prune', '-o', '-newer', path.join(install, 'package.json'), '-print'])).stdout;
  }

  it('runs the launcher from cron, as documented, with no build and nothing written to the install', async function () {
    const before = await installSnapshot();
    const run = await asPostgres(`${install}/bin/synapse-backup backup run --backup-type daily --json`);
    expect(run.exitCode, run.stdout + run.stderr).to.equal(0);
    expect(JSON.parse(run.stdout).result.name).to.match(/^backup_daily_/);
    // The backup, its metadata, and the run's entry in the journal.
    expect((await readdir(backups)).filter((file) => !file.startsWith('synapse-backup.journal.'))).to.have.length(2);
    const listed = await asPostgres(`cd / && ${install}/bin/synapse-backup backup list --json`);
    expect(JSON.parse(listed.stdout).result.backups).to.have.length(1);
    expect(await installSnapshot()).to.equal(before);
  });

  it('runs as `synapse-backup` from PATH through a link to the launcher, from any directory', async function () {
    const bin = path.join(root, 'usr-local-bin');
    await execa('mkdir', ['-p', bin]);
    await execa('ln', ['-s', path.join(install, 'bin', 'synapse-backup'), path.join(bin, 'synapse-backup')]);
    const listed = await execa('runuser', ['-u', 'postgres', '--', 'env', '-i', `PATH=${bin}:/usr/bin:/bin`, `HOME=${home}`, `DATABASE_URL=${database.url}`, `BACKUP_DIR=${backups}`, 'sh', '-c', 'cd / && synapse-backup backup list --json'], {reject: false});
    expect(listed.exitCode, listed.stdout + listed.stderr).to.equal(0);
    expect(JSON.parse(listed.stdout).status).to.equal(0);
  });
});
