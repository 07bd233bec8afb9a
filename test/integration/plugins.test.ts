import {expect} from 'chai';
import {execa} from 'execa';
import path from 'node:path';

import {PROJECT_ROOT, runCli} from '../helpers/cli.js';
import {makeTempDir} from '../helpers/temp.js';

const FIXTURES = path.join(PROJECT_ROOT, 'test', 'fixtures', 'plugins');

describe('plugins', function () {
  this.timeout(120_000);
  let temp: {path: string; remove: () => Promise<void>};
  let env: Record<string, string>;

  beforeEach(async function () {
    temp = await makeTempDir('synapse-plugins-');
    // Plugins live in the per-user data directory; a private one keeps the test off the real one.
    env = {SYNAPSE_BACKUP_DATA_DIR: path.join(temp.path, 'data'), BACKUP_DIR: path.join(temp.path, 'backups'), npm_config_offline: 'true'};
  });

  afterEach(async function () {
    await temp.remove();
  });

  const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, {cwd: temp.path, env: {...env, ...extra}});

  it('finds the bundled storage and encryption plugins as core plugins', async function () {
    const result = await cli(['plugins', '--core']);
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.stdout).to.include('@synapse-backup/plugin-storage-local');
    expect(result.stdout).to.include('@synapse-backup/plugin-encryption-aes');
  });

  it('uses a storage backend from a plugin installed from a tarball, chosen by BACKUP_STORAGE', async function () {
    const packed = await execa('npm', ['pack', '--pack-destination', temp.path, path.join(FIXTURES, 'memory-storage')], {cwd: temp.path});
    const tarball = path.join(temp.path, packed.stdout.trim().split('\n').pop()!);
    const install = await cli(['plugins', 'install', `file:${tarball}`]);
    expect(install.exitCode, install.stdout + install.stderr).to.equal(0);
    const listed = await cli(['backup', 'list', '--json'], {BACKUP_STORAGE: 'memory'});
    expect(listed.exitCode, listed.stdout + listed.stderr).to.equal(0);
    expect(listed.json.result.backups).to.deep.equal([]);
  });

  it('names the available backends when BACKUP_STORAGE is unknown', async function () {
    const result = await cli(['backup', 'list', '--json'], {BACKUP_STORAGE: 'tape'});
    expect(result.exitCode).to.equal(2);
    expect(result.json.error.code).to.equal('E_CONFIG');
    expect(result.json.error.message).to.include("BACKUP_STORAGE 'tape'");
    expect(result.json.error.message).to.include('available: local');
  });

  it('surfaces a plugin whose hook throws, naming the plugin', async function () {
    const link = await cli(['plugins', 'link', '--no-install', path.join(FIXTURES, 'broken-hook')]);
    expect(link.exitCode, link.stderr).to.equal(0);
    const result = await cli(['backup', 'list', '--json']);
    expect(result.exitCode).to.equal(8);
    expect(result.json.error.code).to.equal('E_PLUGIN');
    expect(result.json.error.message).to.include('synapse-backup-plugin-fixture-broken-hook');
    expect(result.json.error.message).to.include('fixture hook exploded');
  });

  it('refuses two plugins that claim the same storage scheme', async function () {
    const link = await cli(['plugins', 'link', '--no-install', path.join(FIXTURES, 'duplicate-local')]);
    expect(link.exitCode, link.stderr).to.equal(0);
    const result = await cli(['backup', 'list', '--json']);
    expect(result.exitCode).to.equal(8);
    expect(result.json.error.message).to.match(/both '.+' and '.+' provide it/);
    expect(result.json.error.message).to.include("for 'local'");
  });
});
