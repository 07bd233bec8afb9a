import {expect} from 'chai';
import {readFile, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT} from '../helpers/cli.js';
import {seedSampleData} from '../helpers/database.js';
import {createWorkspace, type Workspace} from '../helpers/workspace.js';

const SNAPSHOT = path.join(PROJECT_ROOT, 'test', 'snapshots', 'json-shapes.json');

/** The structure of a JSON value: every key, sorted, with the type of its value; an array by its first element. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length > 0 ? [shapeOf(value[0])] : [];
  if (value === null) return 'null';
  if (typeof value === 'object') return Object.fromEntries(Object.keys(value as object).sort().map((key) => [key, shapeOf((value as Record<string, unknown>)[key])]));
  return typeof value;
}

/**
 * The JSON every command prints is a public interface, as its flags are (cli-surface.test.ts):
 * scripts read it. A change of shape must be made on purpose (UPDATE_SNAPSHOTS=1), never by accident.
 */
describe('JSON result shapes (frozen contract)', function () {
  this.timeout(180_000);
  let workspace: Workspace;

  before(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 50);
  });

  after(async function () {
    await workspace.dispose();
  });

  it('matches the committed snapshot of every command\'s --json envelope', async function () {
    const runs: Array<[string, string[]]> = [
      ['backup run', ['backup', 'run', '--backup-type', 'daily', '--verify', '--json']],
      ['backup list', ['backup', 'list', '--json']],
      ['backup verify', ['backup', 'verify', '--latest', '--json']],
      ['backup test-restore', ['backup', 'test-restore', '--latest', '--json']],
      ['backup restore', ['backup', 'restore', '--yes', '--json']],
      ['backup cleanup', ['backup', 'cleanup', '--dry-run', '--json']],
      ['status', ['status', '--json']],
      ['check', ['check', '--json']],
      ['schedule', ['schedule', '--cron', '--json']],
      ['an error', ['backup', 'restore', 'not-a-backup', '--json']],
    ];
    const shapes: Record<string, unknown> = {};
    let newest = '';
    for (const [label, args] of runs) {
      const withName = label === 'backup restore' ? [...args.slice(0, 2), newest, ...args.slice(2)] : args;
      const result = await workspace.run(withName, {SYNAPSE_BACKUP_STATE_DIR: path.join(workspace.cwd, 'state')});
      expect(result.json, `${label}: ${result.stdout}${result.stderr}`).to.be.an('object');
      if (label !== 'an error') expect(result.json.status, `${label}: ${result.stdout}`).to.be.oneOf([0]);
      if (label === 'backup run') newest = result.json.result.name;
      shapes[label] = shapeOf({...result.json, warnings: []});
    }
    if (process.env.UPDATE_SNAPSHOTS === '1') await writeFile(SNAPSHOT, `${JSON.stringify(shapes, null, 2)}\n`);
    // A change here is a change to a public interface: update the snapshot (UPDATE_SNAPSHOTS=1) on purpose only.
    expect(shapes).to.deep.equal(JSON.parse(await readFile(SNAPSHOT, 'utf8')));
  });
});
