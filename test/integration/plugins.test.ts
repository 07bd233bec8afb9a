import {expect} from 'chai';
import {execa} from 'execa';
import path from 'node:path';

import {existsSync} from 'node:fs';
import {chmod, mkdir, readFile} from 'node:fs/promises';

import {PLUGIN_API_VERSION} from '../../src/contracts/plugin-api.js';
import {PROJECT_ROOT, runCli} from '../helpers/cli.js';
import {startHttpReceiver} from '../helpers/receivers.js';
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

  describe('plugins only from directories no other user can write', function () {
    const marker = () => path.join(temp.path, 'marker');
    const planted = async (): Promise<void> => {
      const link = await cli(['plugins', 'link', '--no-install', path.join(FIXTURES, 'planted-init')]);
      expect(link.exitCode, link.stderr).to.equal(0);
    };
    const runList = async () => {
      await mkdir(env.BACKUP_DIR!, {recursive: true});
      return cli(['backup', 'list', '--json'], {PLANTED_MARKER: marker(), BACKUP_ENCRYPTION_KEY: 'a-key-that-is-long-enough-0123456789abcdef'});
    };

    it('loads them from a directory of root or this user that no one else can write (the control)', async function () {
      await planted();
      const result = await runList();
      expect(result.exitCode, result.stderr).to.equal(0);
      expect(await readFile(marker(), 'utf8')).to.equal('ran with key visible\n');
      const check = await cli(['check', '--json']);
      expect((check.json.result ?? check.json.error.details).checks.find((found: {check: string}) => found.check === 'plugin directory').status).to.equal('ok');
    });

    for (const [what, spoil] of [
      ['writable by every user (0777)', (directory: string) => chmod(directory, 0o777)],
      ['owned by another user (nobody)', (directory: string) => execa('chown', ['nobody', directory]).then(() => undefined)],
    ] as const) {
      it(`refuses to load any of them from a directory ${what}, says why and how to fix it, and check reports it`, async function () {
        await planted();
        await spoil(env.SYNAPSE_BACKUP_DATA_DIR!);
        const result = await runList();
        expect(result.exitCode, result.stderr).to.equal(0);
        expect(existsSync(marker()), 'the planted init hook ran').to.equal(false);
        const warning = result.json.warnings.join('\n');
        expect(warning).to.include('were not loaded').and.include(env.SYNAPSE_BACKUP_DATA_DIR!).and.include('chmod -R go-w');
        const check = await cli(['check', '--json']);
        expect(check.exitCode).to.equal(9);
        const finding = check.json.error.details.checks.find((found: {check: string}) => found.check === 'plugin directory');
        expect(finding.status).to.equal('failed');
        expect(existsSync(marker())).to.equal(false);
      });
    }

    it('refuses a linked plugin whose own directory another user can write', async function () {
      const copy = path.join(temp.path, 'shared-checkout');
      await execa('cp', ['-r', path.join(FIXTURES, 'planted-init'), copy]);
      await chmod(copy, 0o777);
      const link = await cli(['plugins', 'link', '--no-install', copy]);
      expect(link.exitCode, link.stderr).to.equal(0);
      const result = await runList();
      expect(existsSync(marker())).to.equal(false);
      expect(result.json.warnings.join('\n')).to.include(copy).and.include('writable by every user');
    });
  });

  describe('the plugin API handshake', function () {
    const link = async (fixture: string) => {
      const linked = await cli(['plugins', 'link', '--no-install', path.join(FIXTURES, fixture)]);
      expect(linked.exitCode, linked.stderr).to.equal(0);
    };

    it('refuses a storage plugin made for another plugin API, naming it and both versions, without running it', async function () {
      await link('future-storage');
      const marker = path.join(temp.path, 'ran');
      const result = await cli(['backup', 'list', '--json'], {FIXTURE_MARKER: marker});
      expect(result.exitCode).to.equal(8);
      expect(result.json.error.code).to.equal('E_PLUGIN');
      expect(result.json.error.message).to.equal(
        `unable to load plugin 'synapse-backup-plugin-fixture-future-storage' 2.1.0 targets plugin API ^2.0.0, but this synapse-backup provides plugin API ${PLUGIN_API_VERSION}`,
      );
      expect(result.json.error.suggestion).to.include('plugins uninstall');
      expect(existsSync(marker)).to.equal(false);
    });

    it('refuses a plugin that does not say which plugin API it targets', async function () {
      await link('undeclared-storage');
      const result = await cli(['backup', 'list', '--json']);
      expect(result.exitCode).to.equal(8);
      expect(result.json.error.message).to.include("plugin 'synapse-backup-plugin-fixture-undeclared-storage' 1.0.0 does not declare a valid plugin API range");
      expect(result.json.error.message).to.include('"pluginApi": "^1.0.0"');
    });

    it('leaves out an incompatible notification plugin with a warning, and the other sinks still deliver', async function () {
      await link('future-sink');
      const receiver = await startHttpReceiver();
      try {
        const result = await cli(['backup', 'run', '--json'], {DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/nowhere', NOTIFY_FUTURE: '1', NOTIFY_WEBHOOK_URL: receiver.url});
        expect(result.exitCode).to.equal(3);
        expect(result.json.warnings.join('\n')).to.include(
          `unable to load notification sinks from plugin 'synapse-backup-plugin-fixture-future-sink' 2.0.0 targets plugin API >=2, but this synapse-backup provides plugin API ${PLUGIN_API_VERSION}; it sends nothing`,
        );
        expect(receiver.requests.map((request) => JSON.parse(request.body).event)).to.deep.equal(['backup.failed']);
      } finally {
        await receiver.close();
      }
    });
  });
});
