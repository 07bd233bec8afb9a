import {expect} from 'chai';
import {execa} from 'execa';
import {existsSync} from 'node:fs';
import {chmod, mkdir, readFile, readdir, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';

import {CLI, runCli} from '../../helpers/cli.js';
import {seedSampleData, sql} from '../../helpers/database.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {mountTmpfs, remountReadOnly, unmount} from '../../helpers/mounts.js';
import {startHttpReceiver, type HttpReceiver} from '../../helpers/receivers.js';
import {freePort} from '../../helpers/services.js';
import {TEST_KEY, createWorkspace, type Workspace} from '../../helpers/workspace.js';

/** The status command's problems by alert, from its --json result. */
function alertsOf(result: {json: any}): string[] {
  return (result.json.result?.problems ?? []).map((problem: {alert: string}) => problem.alert).sort();
}

describe('status', function () {
  let workspace: Workspace;
  let dataDir: string;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 400);
    dataDir = path.join(workspace.cwd, 'data');
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  const status = (args: string[], env: Record<string, string | undefined> = {}) => workspace.run(['status', ...args], {SYNAPSE_BACKUP_STATE_DIR: dataDir, ...env});

  it('is OK (exit 0) with a current backup, and shows it in the table, as JSON and as Prometheus metrics', async function () {
    const name = await workspace.backup();
    const result = await status(['--json']);
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.json.status).to.equal(0);
    expect(result.json.result.level).to.equal('ok');
    const [hourly] = result.json.result.types;
    expect(hourly).to.include({database: workspace.database, type: 'hourly', overdue: false});
    expect(hourly.newest.name).to.equal(name);
    // Only the types that have a backup are checked: no monthly backups, no monthly alarm.
    expect(result.json.result.types).to.have.length(1);

    const table = await status([]);
    expect(table.exitCode).to.equal(0);
    expect(table.stdout).to.match(/^OK: all backups current/).and.include(name).and.include('free of');

    const metrics = await status(['--format', 'prometheus']);
    expect(metrics.exitCode).to.equal(0);
    const labels = `{database="${workspace.database}",type="hourly"}`;
    for (const metric of ['synapse_backup_last_success_timestamp_seconds', 'synapse_backup_age_seconds', 'synapse_backup_size_bytes', 'synapse_backup_duration_seconds']) {
      expect(metrics.stdout).to.match(new RegExp(`^${metric}${labels.replaceAll(/[{}]/g, '\\$&')} [0-9.e+]+$`, 'm'));
      expect(metrics.stdout).to.include(`# TYPE ${metric} gauge`);
    }
    expect(metrics.stdout).to.match(/^synapse_backup_storage_free_ratio 0\.\d+$/m);
    expect(metrics.stdout).to.match(/^synapse_backup_failures_total\{operation="backup"\} 0$/m);
    expect(metrics.stdout).to.match(/^synapse_backup_status 0$/m);
  });

  it('is CRITICAL (exit 2) when a backup is overdue by a short max age, and names it', async function () {
    await workspace.backup();
    await sleep(1100);
    const result = await status(['--json'], {BACKUP_ALERT_MAX_AGE_HOURLY: '1s'});
    expect(result.exitCode).to.equal(2);
    expect(result.json.status).to.equal(2);
    expect(alertsOf(result)).to.deep.equal(['alert.backup_overdue']);
    expect(result.json.result.problems[0].message).to.include('hourly').and.include(workspace.database);
    const text = await status([], {BACKUP_ALERT_MAX_AGE_HOURLY: '1s'});
    expect(text.exitCode).to.equal(2);
    expect(text.stdout).to.match(/^CRITICAL: /).and.include('OVERDUE');
  });

  it('checks the types BACKUP_ALERT_TYPES names, a type without any backup being critical', async function () {
    await workspace.backup();
    const result = await status(['--json'], {BACKUP_ALERT_TYPES: 'hourly,daily'});
    expect(result.exitCode).to.equal(2);
    expect(result.json.result.problems.map((problem: {id: string}) => problem.id)).to.deep.equal([`backup_overdue:${workspace.database}:daily`]);
    const bad = await status(['--json'], {BACKUP_ALERT_TYPES: 'hourly,weekly'});
    expect(bad.exitCode).to.equal(3);
    expect(bad.json.error.code).to.equal('E_CONFIG');
  });

  it('warns (exit 1) when the newest backup is much smaller than the ones before it', async function () {
    for (let index = 0; index < 3; index++) await workspace.backup();
    await sql(workspace.database, 'delete from orders');
    await workspace.backup();
    const result = await status(['--json']);
    expect(result.exitCode).to.equal(1);
    expect(alertsOf(result)).to.deep.equal(['alert.backup_size_drop']);
    const [hourly] = result.json.result.types;
    expect(hourly.trend.storedBytes).to.have.length(4);
    expect(hourly.sizeRatio).to.be.below(0.5);
  });

  it('reports failures and the last restore test from the run journal, and warns while the newest backup run failed', async function () {
    const name = await workspace.backup();
    expect((await workspace.run(['backup', 'test-restore', name])).exitCode).to.equal(0);
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'echo "pg_dump: error: boom" >&2; exit 1')});
    expect((await workspace.run(['backup', 'run'], {PG_BIN_DIR: binDir})).exitCode).to.equal(5);
    const result = await status(['--json']);
    expect(result.exitCode).to.equal(1);
    expect(alertsOf(result)).to.deep.equal(['alert.backup_failed']);
    expect(result.json.result.lastFailures[0]).to.include({operation: 'backup', backupType: 'hourly'});
    expect(result.json.result.lastFailures[0].error.code).to.equal('E_DUMP_FAILED');
    expect(result.json.result.lastSuccess.restoreTest.backupName).to.equal(name);
    const metrics = await status(['--format', 'prometheus']);
    expect(metrics.stdout).to.match(/^synapse_backup_failures_total\{operation="backup"\} 1$/m);
    expect(metrics.stdout).to.match(/^synapse_backup_last_restore_test_success_timestamp_seconds \d+(\.\d+)?$/m);
    // A good run clears it.
    await workspace.backup();
    expect((await status(['--json'])).exitCode).to.equal(0);
  });

  it('believes no journal entry it cannot authenticate', async function () {
    await workspace.backup();
    const forged = {formatVersion: 1, kind: 'synapse-backup/run', operation: 'restore-test', outcome: 'succeeded', startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), durationMs: 1, host: 'x', failureCount: 0};
    await writeFile(path.join(workspace.backupDir, 'synapse-backup.journal.29991231T000000000Z.0badf00d.json'), JSON.stringify(forged));
    const result = await status(['--json']);
    expect(result.json.result.rejectedJournalEntries).to.equal(1);
    expect(result.json.result.lastSuccess.restoreTest ?? null).to.equal(null);
    expect(result.json.warnings.join('\n')).to.include('not authentic');
  });

  it('exits 3 (UNKNOWN) when it cannot read the storage, and creates no missing storage', async function () {
    const result = await status(['--json'], {BACKUP_DIR: path.join(workspace.cwd, 'nowhere')});
    expect(result.exitCode).to.equal(3);
    expect(existsSync(path.join(workspace.cwd, 'nowhere'))).to.equal(false);
    expect(result.json.status).to.equal(3);
    const text = await status([], {BACKUP_DIR: path.join(workspace.cwd, 'nowhere')});
    expect(text.exitCode).to.equal(3);
    expect(text.stderr).to.include('does not exist');
  });

  it('is CRITICAL (exit 2), never OK, when it sees no good backup: an empty storage, or backups none of which the key authenticates', async function () {
    await mkdir(workspace.backupDir, {recursive: true});
    const empty = await status(['--json']);
    expect(empty.exitCode, empty.stdout).to.equal(2);
    expect(empty.json.result.problems.map((problem: {id: string}) => problem.id)).to.deep.equal([`no_good_backup:${workspace.database}`]);
    expect((await status([])).stdout).to.match(/^CRITICAL: database '.*' has no good backup/);

    await workspace.backup();
    await workspace.backup({}, 'daily');
    const otherKey = await status(['--json'], {BACKUP_ENCRYPTION_KEY: 'another-key-that-is-long-enough-0123456789'});
    expect(otherKey.exitCode, otherKey.stdout).to.equal(2);
    expect(otherKey.json.result.problems[0].message).to.include('holds 2 backups that do not count (2 not authentic with the configured key');
  });

  it('is UNKNOWN (exit 3) when it cannot read a backup\'s metadata, CRITICAL when then no backup is good', async function () {
    const name = await workspace.backup();
    // The storage as another user sees it: the directory readable, the metadata not.
    await chmod(workspace.cwd, 0o755);
    await chmod(workspace.backupDir, 0o755);
    const meta = path.join(workspace.backupDir, `${name}.meta.json`);
    await chmod(meta, 0o600);
    const asNobody = (extra: string[] = []) =>
      execa('runuser', ['-u', 'nobody', '--', 'env', '-i', `PATH=${process.env.PATH}`, 'HOME=/nonexistent', `DATABASE_URL=${workspace.databaseUrl}`, `BACKUP_DIR=${workspace.backupDir}`, `BACKUP_ENCRYPTION_KEY=${TEST_KEY}`, 'BACKUP_ENCRYPTION_ITERATIONS=20000', process.execPath, '--', CLI, 'status', '--json', ...extra], {reject: false, cwd: '/'});
    const blind = await asNobody();
    expect(blind.exitCode, blind.stdout + blind.stderr).to.equal(2);
    const ids = JSON.parse(blind.stdout).result.problems.map((problem: {id: string}) => problem.id);
    expect(ids).to.deep.equal([`no_good_backup:${workspace.database}`, 'storage_unreadable']);
    expect(JSON.parse(blind.stdout).result.problems[1].message).to.include('EACCES');
    // A second backup it can read is good, but the one it cannot see still keeps it from OK.
    const second = await workspace.backup();
    await chmod(path.join(workspace.backupDir, `${second}.meta.json`), 0o644);
    await chmod(path.join(workspace.backupDir, second), 0o644);
    const partly = await asNobody();
    expect(partly.exitCode, partly.stdout + partly.stderr).to.equal(3);
    expect(JSON.parse(partly.stdout).result.level).to.equal('unknown');
  });

  it('no longer counts a backup as good once a verification found it damaged, anywhere', async function () {
    const older = await workspace.backup();
    const newer = await workspace.backup();
    const file = path.join(workspace.backupDir, newer);
    const bytes = await readFile(file);
    bytes[bytes.length - 40] = bytes[bytes.length - 40]! ^ 0xff;
    await writeFile(file, bytes);
    const verified = await workspace.run(['backup', 'verify', newer, '--json']);
    expect(verified.exitCode).to.equal(13);
    // Put the bytes back as they were verified: the record of the failure still stands until a verification passes.
    bytes[bytes.length - 40] = bytes[bytes.length - 40]! ^ 0xff;
    await writeFile(file, bytes);
    const result = await status(['--json']);
    expect(result.json.result.types[0].newest.name).to.equal(older);
    const listed = await workspace.run(['backup', 'list', '--json']);
    expect(listed.json.result.backups.find((backup: {name: string}) => backup.name === newer)).to.include({health: 'damaged'});
    const latest = await workspace.run(['backup', 'test-restore', '--latest', '--json']);
    expect(latest.exitCode, latest.stdout).to.equal(0);
    expect(latest.json.result.backupName).to.equal(older);
    const cleanup = await workspace.run(['backup', 'cleanup', '--dry-run', '--json'], {BACKUP_RETENTION_HOURLY: '1'});
    expect(cleanup.json.result.removedKeys ?? []).to.deep.equal([]);
    // A verification that passes again makes it good again.
    expect((await workspace.run(['backup', 'verify', newer, '--json'])).exitCode).to.equal(0);
    expect((await status(['--json'])).json.result.types[0].newest.name).to.equal(newer);
  });

  it('writes a node_exporter textfile atomically', async function () {
    await workspace.backup();
    const directory = path.join(workspace.cwd, 'textfiles');
    await mkdir(directory);
    const result = await status(['--textfile', directory]);
    expect(result.exitCode).to.equal(0);
    expect(await readdir(directory)).to.deep.equal(['synapse_backup.prom']);
    expect(await readFile(path.join(directory, 'synapse_backup.prom'), 'utf8')).to.include('synapse_backup_age_seconds{');
  });

  describe('on a storage it can only read', function () {
    let mountPoint: string;

    beforeEach(async function () {
      mountPoint = path.join(workspace.cwd, 'small');
      await mkdir(mountPoint);
      await mountTmpfs(mountPoint, {sizeBytes: 4 * 1024 * 1024});
    });

    afterEach(async function () {
      await unmount(mountPoint);
    });

    it('works from a second process with a read-only view of the storage and no database server, and warns of a nearly full disk', async function () {
      const name = await workspace.backup({BACKUP_DIR: mountPoint});
      await writeFile(path.join(mountPoint, 'ballast'), Buffer.alloc(3.5 * 1024 * 1024));
      await remountReadOnly(mountPoint, true);
      try {
        const down = `postgresql://postgres@127.0.0.1:${await freePort()}/${workspace.database}`;
        const result = await status(['--json'], {BACKUP_DIR: mountPoint, DATABASE_URL: down});
        expect(result.exitCode, result.stderr).to.equal(1);
        expect(alertsOf(result)).to.deep.equal(['alert.disk_low']);
        expect(result.json.result.types[0].newest.name).to.equal(name);
        expect(result.json.result.storage.freeRatio).to.be.below(0.2);
        const relaxed = await status(['--json'], {BACKUP_DIR: mountPoint, DATABASE_URL: down, BACKUP_ALERT_MIN_FREE_PERCENT: '5'});
        expect(relaxed.exitCode).to.equal(0);
      } finally {
        await remountReadOnly(mountPoint, false);
      }
    });
  });

  describe('--notify', function () {
    let receiver: HttpReceiver;

    beforeEach(async function () {
      receiver = await startHttpReceiver();
    });

    afterEach(async function () {
      await receiver.close();
    });

    const received = (): string[] => receiver.requests.map((request) => {
      const event = JSON.parse(request.body);
      return event.event === 'alert.resolved' ? `resolved ${event.details.alert}` : event.event;
    });

    it('sends a standing problem once, again after NOTIFY_REPEAT_INTERVAL, and alert.resolved once when it clears', async function () {
      await workspace.backup();
      await sleep(1100);
      const overdue = {NOTIFY_WEBHOOK_URL: receiver.url, BACKUP_ALERT_MAX_AGE_HOURLY: '1s', NOTIFY_REPEAT_INTERVAL: '1h'};
      expect((await status(['--notify'], overdue)).exitCode).to.equal(2);
      expect((await status(['--notify'], overdue)).exitCode).to.equal(2);
      expect(received()).to.deep.equal(['alert.backup_overdue']);
      const event = JSON.parse(receiver.requests[0]!.body);
      expect(event.summary).to.match(/^ALERT: status \(hourly\) of database/);
      expect(event.details.alert).to.equal(`backup_overdue:${workspace.database}:hourly`);

      await sleep(1100);
      expect((await status(['--notify'], {...overdue, NOTIFY_REPEAT_INTERVAL: '1s'})).exitCode).to.equal(2);
      expect(received()).to.deep.equal(['alert.backup_overdue', 'alert.backup_overdue']);

      const cleared = {NOTIFY_WEBHOOK_URL: receiver.url};
      expect((await status(['--notify'], cleared)).exitCode).to.equal(0);
      expect((await status(['--notify'], cleared)).exitCode).to.equal(0);
      expect(received()).to.deep.equal(['alert.backup_overdue', 'alert.backup_overdue', `resolved backup_overdue:${workspace.database}:hourly`]);
    });

    it('keeps the real status when the alert state cannot be written: falls back to a private directory, else sends at every run', async function () {
      await workspace.backup();
      await sleep(1100);
      const blocker = path.join(workspace.cwd, 'a-file');
      await writeFile(blocker, 'not a directory');
      const temp = path.join(workspace.cwd, 'tmp');
      await mkdir(temp);
      const overdue = {NOTIFY_WEBHOOK_URL: receiver.url, BACKUP_ALERT_MAX_AGE_HOURLY: '1s', SYNAPSE_BACKUP_STATE_DIR: path.join(blocker, 'state'), TMPDIR: temp};
      const first = await status(['--notify', '--json'], overdue);
      expect(first.exitCode, first.stdout).to.equal(2);
      expect(first.json.status).to.equal(2);
      expect(first.json.warnings.join('\n')).to.include('unable to keep the alert state in').and.include(temp);
      expect((await status(['--notify', '--json'], overdue)).exitCode).to.equal(2);
      expect(received()).to.deep.equal(['alert.backup_overdue']);

      // Nowhere to keep it: the real status still, and the alert again at every run rather than never.
      const nowhere = {...overdue, TMPDIR: blocker};
      const blind = await status(['--notify', '--json'], nowhere);
      expect(blind.exitCode, blind.stdout).to.equal(2);
      expect(blind.json.warnings.join('\n')).to.include('unable to keep the alert state anywhere');
      await status(['--notify', '--json'], nowhere);
      expect(received()).to.deep.equal(['alert.backup_overdue', 'alert.backup_overdue', 'alert.backup_overdue']);
    });

    it('does not double-send from concurrent runs', async function () {
      await workspace.backup();
      await sleep(1100);
      const env = {...workspace.env, SYNAPSE_BACKUP_STATE_DIR: dataDir, NOTIFY_WEBHOOK_URL: receiver.url, BACKUP_ALERT_MAX_AGE_HOURLY: '1s'};
      const runs = await Promise.all(Array.from({length: 4}, () => runCli(['status', '--notify', '--json'], {cwd: workspace.cwd, env})));
      expect(runs.map((run) => run.exitCode)).to.deep.equal([2, 2, 2, 2]);
      expect(received()).to.deep.equal(['alert.backup_overdue']);
      expect(runs.map((run) => run.json.result.alerts.sent.length).sort()).to.deep.equal([0, 0, 0, 1]);
    });

    it('keeps trying a problem whose alert could not be delivered', async function () {
      await workspace.backup();
      await sleep(1100);
      const overdue = {NOTIFY_WEBHOOK_URL: receiver.url, BACKUP_ALERT_MAX_AGE_HOURLY: '1s', NOTIFY_TIMEOUT: '2s'};
      receiver.answer = 500;
      await status(['--notify'], overdue);
      receiver.answer = 200;
      const requestsBefore = receiver.requests.length;
      await status(['--notify'], overdue);
      expect(receiver.requests.length).to.be.greaterThan(requestsBefore);
      await status(['--notify'], overdue);
      expect(receiver.requests.length).to.equal(requestsBefore + 1);
    });
  });
});
