import {expect} from 'chai';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

/** The core reads what a backend declares instead of assuming it: here, a backend without an atomic conditional put. */
describe('a storage without an atomic conditional put', function () {
  this.timeout(60_000);
  let workspace: Workspace;
  let env: Record<string, string>;

  beforeEach(async function () {
    workspace = await createWorkspace();
    env = {SYNAPSE_BACKUP_DATA_DIR: path.join(workspace.cwd, 'data'), BACKUP_STORAGE: 'plain-put'};
    const link = await workspace.run(['plugins', 'link', '--no-install', path.join(PROJECT_ROOT, 'test', 'fixtures', 'plugins', 'plain-put-storage')], env);
    expect(link.exitCode, link.stderr).to.equal(0);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('still lets only one of two overlapping runs on this host in, and says the lock covers this host only', async function () {
    // pg_dump takes a while, so that the runs overlap.
    const bin = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'sleep 2\nexec pg_dump "$@"')});
    const runs = await Promise.all([0, 1].map(() => workspace.run(['backup', 'run', '--json'], {...env, PG_BIN_DIR: bin})));
    expect(runs.map((run) => run.exitCode).sort()).to.deep.equal([0, 11]);
    const winner = runs.find((run) => run.exitCode === 0)!;
    expect(winner.json.warnings.join('\n')).to.include('the plain-put storage cannot create an object only if it is absent, atomically: the lock keeps out other runs on this host only');
    const listed = await workspace.run(['backup', 'list', '--json'], env);
    expect(listed.json.result.backups.map((backup: {health: string}) => backup.health)).to.deep.equal(['good']);
  });

  it('is reported by check as a warning', async function () {
    await workspace.backup(env);
    const result = await workspace.run(['check', '--json'], env);
    const storage = result.json.result.checks.find((check: {check: string}) => check.check === 'storage');
    expect(storage.status).to.equal('warning');
    expect(storage.detail).to.include('no atomic conditional put');
  });
});
