import {expect} from 'chai';
import {execa} from 'execa';
import {readdir} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT, spawnCli} from '../../helpers/cli.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';
import {seedSampleData, snapshotDatabase, sql} from '../../helpers/database.js';

const STALLING = path.join(PROJECT_ROOT, 'test', 'fixtures', 'plugins', 'stalling-storage');

/**
 * A storage whose calls never return (a dead network mount, a path under /proc) must neither hold a
 * command forever nor keep it from honouring the first SIGTERM. The stalls come from a fixture
 * backend over a real directory; everything else is real.
 */
describe('a storage that stops answering', function () {
  this.timeout(60_000);
  let workspace: Workspace;
  let env: Record<string, string | undefined>;

  beforeEach(async function () {
    workspace = await createWorkspace();
    env = {SYNAPSE_BACKUP_DATA_DIR: path.join(workspace.cwd, 'data'), BACKUP_STORAGE: 'stalling'};
    const link = await workspace.run(['plugins', 'link', '--no-install', STALLING], env);
    expect(link.exitCode, link.stderr).to.equal(0);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  /** Runs `args` with the storage stalling at `stallAt`, sends SIGTERM once the command is inside the hung call, and waits for it. */
  async function sigtermWhileHanging(args: string[], stallAt: string) {
    const child = spawnCli(args, {cwd: workspace.cwd, env: {...workspace.env, ...env, STALLING_STORAGE_AT: stallAt}});
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // The command is inside the hung call once the plugin hooks have answered; give it that long.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const sent = Date.now();
    child.kill('SIGTERM');
    const outcome = await child;
    return {outcome, stderr, sent};
  }

  it('gives up on an operation after SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS and says what did not answer', async function () {
    await workspace.backup();
    const started = Date.now();
    const result = await workspace.run(['backup', 'list', '--json'], {...env, STALLING_STORAGE_AT: 'list', SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS: '1500'});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(7);
    expect(result.json.error.code).to.equal('E_STORAGE');
    expect(result.json.error.message).to.include('unable to list the backups at');
    expect(result.json.error.message).to.include('did not answer within 1.5 s');
    expect(result.json.error.suggestion).to.include('SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS');
    expect(Date.now() - started).to.be.below(30_000);
  });

  it('tries a transient failure again, twice, and says so; then gives up naming it', async function () {
    await workspace.backup();
    const recovered = await workspace.run(['backup', 'list', '--json'], {...env, STALLING_STORAGE_FLAKY: 'list:2'});
    expect(recovered.exitCode, recovered.stdout).to.equal(0);
    expect(recovered.json.result.backups).to.have.length(1);
    const retries = recovered.json.warnings.filter((warning: string) => warning.startsWith('the storage failed to list the backups (ESTALE'));
    expect(retries.map((warning: string) => warning.slice(warning.indexOf('(attempt')))).to.deep.equal(['(attempt 2 of 3)', '(attempt 3 of 3)']);
    const failed = await workspace.run(['backup', 'list', '--json'], {...env, STALLING_STORAGE_FLAKY: 'list:3'});
    expect(failed.exitCode).to.equal(7);
    expect(failed.json.error.message).to.include('stale file handle');
  });

  it('logs every storage call with DEBUG=1', async function () {
    await workspace.backup();
    const result = await workspace.run(['backup', 'list'], {...env, DEBUG: '1'});
    expect(result.exitCode).to.equal(0);
    expect(result.stderr).to.match(/debug storage stalling: list '[^']*': \d+ objects \(\d+ ms\)/);
  });

  it('bounds a read that stops midway: the restore fails naming the read, and the database stays as it was', async function () {
    await seedSampleData(workspace.database, 200);
    const name = await workspace.backup();
    const before = await snapshotDatabase(workspace.database);
    await sql(workspace.database, 'delete from orders where id > 150');
    const changed = await snapshotDatabase(workspace.database);
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {...env, STALLING_STORAGE_AT: 'get-body', SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS: '1500'});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(7);
    expect(result.json.error.message).to.match(new RegExp(`unable to read '${name.replaceAll('.', '\\.')}' at .*did not answer within 1\\.5 s`));
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(changed);
    expect(changed).to.not.deep.equal(before);
  });

  it('bounds the end of an upload, and publishes nothing when it times out', async function () {
    const result = await workspace.run(['backup', 'run', '--json'], {...env, STALLING_STORAGE_AT: 'put-end', SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS: '1000'});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(7);
    expect(result.json.error.message).to.match(/unable to store 'backup_hourly_\d{8}_\d{6}\.sql\.gz\.enc' .*did not answer within 1 s/);
    const listed = await workspace.run(['backup', 'list', '--json']);
    expect(listed.json.result.backups).to.deep.equal([]);
  });

  it('honours the first SIGTERM while opening the storage hangs', async function () {
    // The command is inside the hung call once the plugin hooks have answered; give it that long.
    const {outcome, stderr, sent} = await sigtermWhileHanging(['backup', 'run'], 'create');
    expect(outcome.exitCode, stderr).to.equal(130);
    expect(Date.now() - sent).to.be.below(10_000);
    expect(stderr).to.include('Received SIGTERM: stopping and cleaning up');
    expect(stderr).to.include("unable to open backup storage '");
    expect(stderr).to.include('cancelled');
  });

  it('exits once a command is done, although a storage call that timed out never returned', async function () {
    await workspace.backup();
    const started = Date.now();
    // The free space does not answer: a warning; status goes on, and must then end, not wait for the mount.
    const result = await workspace.run(['status', '--json'], {...env, STALLING_STORAGE_AT: 'space', SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS: '1000'});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
    expect(result.json.warnings.join('\n')).to.include('unable to measure the free space');
    expect(Date.now() - started).to.be.below(20_000);
  });

  it('stops within a few seconds of SIGTERM even when its clean-up hangs too', async function () {
    // The upload hangs, and so does every call its clean-up makes (the marker's removal, the lock's release): each would add its own grace.
    const {outcome, stderr, sent} = await sigtermWhileHanging(['backup', 'run'], 'put-end,get,delete,stat');
    expect(outcome.exitCode, stderr).to.equal(130);
    expect(Date.now() - sent, stderr).to.be.below(5500);
    expect(stderr).to.include('exiting now; the next run removes what is left');
  });

  it('honours the first SIGTERM while a lookup hangs, and still releases its lock', async function () {
    const name = await workspace.backup();
    const {outcome, stderr} = await sigtermWhileHanging(['backup', 'restore', name, '--yes'], 'get');
    expect(outcome.exitCode, stderr).to.equal(130);
    expect(stderr).to.include('cancelled');
    expect((await readdir(workspace.backupDir)).filter((file) => file.endsWith('.lock'))).to.deep.equal([]);
  });
});

describe('a special file planted under a backup name', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('is no object: a FIFO in place of the metadata neither blocks list nor restore', async function () {
    const name = await workspace.backup();
    const metadata = path.join(workspace.backupDir, `${name}.meta.json`);
    await execa('rm', [metadata]);
    await execa('mkfifo', [metadata]);
    const listed = await workspace.run(['backup', 'list', '--json'], {SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS: '20000'});
    expect(listed.exitCode, listed.stderr).to.equal(0);
    expect(listed.json.result.backups.map((backup: {name: string; health: string}) => [backup.name, backup.health])).to.deep.equal([[name, 'metadata-missing']]);
    const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS: '20000'});
    expect(restored.exitCode).to.equal(13);
    expect(restored.json.error.code).to.equal('E_METADATA');
  });
});
