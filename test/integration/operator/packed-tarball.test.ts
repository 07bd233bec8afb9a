import {expect} from 'chai';
import {execa} from 'execa';
import {mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {createTestDatabase} from '../../helpers/database.js';

/**
 * `npm pack` must hold a working CLI: the launcher, the build, the manifest and the bundled
 * plugins. Installed from the tarball alone (its dependencies from the registry) into an empty
 * directory, it backs up and lists, with a current Node on PATH.
 */
describe('the packed tarball', function () {
  this.timeout(300_000);
  let directory: string;

  before(async function () {
    directory = await mkdtemp(path.join(tmpdir(), 'synapse-pack-'));
  });

  after(async function () {
    await rm(directory, {recursive: true, force: true});
  });

  it('installs into an empty directory and runs', async function () {
    const packed = await execa('npm', ['pack', '--ignore-scripts', '--pack-destination', directory, '--json'], {cwd: PROJECT_ROOT});
    const [{filename, files, bundled}] = JSON.parse(packed.stdout) as Array<{filename: string; files: Array<{path: string}>; bundled: string[]}>;
    const paths = files.map((file) => file.path);
    expect(paths).to.include.members(['bin/synapse-backup', 'bin/run.js', 'oclif.manifest.json', 'dist/commands/backup/run.js']);
    expect(bundled).to.include.members(['@synapse-backup/plugin-storage-local', '@synapse-backup/plugin-encryption-aes']);

    const prefix = path.join(directory, 'install');
    const installed = await execa('npm', ['install', '--prefix', prefix, '--ignore-scripts', '--no-audit', '--no-fund', '--no-save', path.join(directory, filename)], {reject: false});
    expect(installed.exitCode, installed.stderr).to.equal(0);

    const database = await createTestDatabase();
    try {
      const env = {PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: directory, DATABASE_URL: database.url, BACKUP_DIR: path.join(directory, 'backups')};
      const launcher = path.join(prefix, 'node_modules', '.bin', 'synapse-backup');
      const run = await execa(launcher, ['backup', 'run', '--json'], {env, extendEnv: false, reject: false, cwd: directory});
      expect(run.exitCode, run.stdout + run.stderr).to.equal(0);
      const listed = await execa(launcher, ['backup', 'list', '--json'], {env, extendEnv: false, reject: false, cwd: directory});
      expect(JSON.parse(listed.stdout).result.backups).to.have.length(1);
    } finally {
      await database.drop();
    }
  });
});
