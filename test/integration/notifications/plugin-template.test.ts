import {expect} from 'chai';
import {execa} from 'execa';
import {cp, mkdir, readFile, symlink} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {makeTempDir} from '../../helpers/temp.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

const TEMPLATE = path.join(PROJECT_ROOT, 'examples', 'notify-plugin-template');

describe('the in-house plugin template', function () {
  this.timeout(180_000);
  let workspace: Workspace;
  let temp: {path: string; remove: () => Promise<void>};

  beforeEach(async function () {
    workspace = await createWorkspace();
    temp = await makeTempDir('synapse-template-');
  });

  afterEach(async function () {
    await temp.remove();
    await workspace.dispose();
  });

  it('passes its own tests, which run our sink contract suite through the synapse-backup/testing export', async function () {
    const copy = path.join(temp.path, 'plugin');
    await cp(TEMPLATE, copy, {recursive: true});
    // What `npm install` makes of its dev dependencies: synapse-backup from this checkout, chai and mocha.
    await mkdir(path.join(copy, 'node_modules'));
    await symlink(PROJECT_ROOT, path.join(copy, 'node_modules', 'synapse-backup'));
    for (const name of ['chai', 'mocha']) await symlink(path.join(PROJECT_ROOT, 'node_modules', name), path.join(copy, 'node_modules', name));
    const result = await execa(path.join(PROJECT_ROOT, 'node_modules', '.bin', 'mocha'), ['test/**/*.test.js'], {cwd: copy, reject: false});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
    expect(result.stdout).to.match(/notification sink contract: jsonl/);
    expect(result.stdout).to.match(/8 passing/);
  });

  it('is packed, installed with plugins install and hears a real backup and a failing one', async function () {
    const packed = await execa('npm', ['pack', '--pack-destination', temp.path, TEMPLATE], {cwd: temp.path});
    const tarball = path.join(temp.path, packed.stdout.trim().split('\n').pop()!);
    const env = {SYNAPSE_BACKUP_DATA_DIR: path.join(temp.path, 'data'), npm_config_offline: 'true'};
    const install = await workspace.run(['plugins', 'install', `file:${tarball}`], env);
    expect(install.exitCode, install.stdout + install.stderr).to.equal(0);

    const events = path.join(temp.path, 'events.jsonl');
    const check = await workspace.run(['check', '--json'], {...env, NOTIFY_JSONL_FILE: events});
    const jsonl = check.json.result.components.find((component: {name: string}) => component.name === 'jsonl');
    expect(jsonl).to.include({kind: 'sink', plugin: 'synapse-backup-plugin-notify-jsonl'});

    const name = await workspace.backup({...env, NOTIFY_JSONL_FILE: events, NOTIFY_JSONL_EVENTS: '*'});
    const failed = await workspace.run(['backup', 'run', '--json'], {...env, NOTIFY_JSONL_FILE: events, DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/nowhere'});
    expect(failed.exitCode).to.equal(3);
    const lines = (await readFile(events, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((event) => event.event)).to.deep.equal(['backup.started', 'backup.succeeded', 'backup.failed']);
    expect(lines[1].backup.name).to.equal(name);
    expect(lines[1].database).to.equal(workspace.database);
    expect(lines[2].error.code).to.equal('E_DB_UNREACHABLE');
    expect(lines[2].database).to.equal('nowhere');
  });
});
