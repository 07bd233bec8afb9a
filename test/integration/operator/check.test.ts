import {expect} from 'chai';
import {utimes, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {startHttpReceiver, type HttpReceiver} from '../../helpers/receivers.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

describe('synapse-backup check', function () {
  this.timeout(60_000);
  let workspace: Workspace;
  let receiver: HttpReceiver;

  beforeEach(async function () {
    workspace = await createWorkspace();
    receiver = await startHttpReceiver();
  });

  afterEach(async function () {
    await receiver.close();
    await workspace.dispose();
  });

  const statuses = (checks: Array<{check: string; status: string}>) => Object.fromEntries(checks.map((check) => [check.check, check.status]));

  it('lists what is installed, checks a healthy setup end to end and sends test.ping through every active sink', async function () {
    await workspace.backup();
    const before = await workspace.backupFiles();
    const result = await workspace.run(['check', '--notify-test', '--json'], {NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_COMMAND: 'cat > /dev/null'});
    expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
    const {components, checks} = result.json.result;
    expect(components.map((component: {kind: string; name: string}) => `${component.kind}:${component.name}`)).to.include.members([
      'storage:local',
      'cipher:aes-256-cbc',
      'sink:webhook',
      'sink:slack',
      'sink:email',
      'sink:command',
      'sink:heartbeat',
    ]);
    expect(components.find((component: {name: string}) => component.name === 'webhook').plugin).to.equal('@synapse-backup/plugin-notify-webhook');
    expect(statuses(checks)).to.deep.equal({
      'plugin directory': 'ok',
      configuration: 'ok',
      database: 'ok',
      pg_dump: 'ok',
      psql: 'ok',
      storage: 'ok',
      key: 'ok',
      'notify:command': 'ok',
      'notify:webhook': 'ok',
    });
    expect(checks.find((check: {check: string}) => check.check === 'key').detail).to.include('authenticates the newest backup');
    expect(receiver.requests.map((request) => JSON.parse(request.body).event)).to.deep.equal(['test.ping']);
    expect(await workspace.backupFiles(), 'the probe is gone').to.deep.equal(before);
  });

  it('finds what is wrong, each with its fix, and exits 9', async function () {
    const result = await workspace.run(['check', '--json'], {
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/nowhere',
      BACKUP_DIR: '/etc/passwd',
      BACKUP_COMPRESSION: 'bogus',
      NOTIFY_EMAIL_TO: 'not-an-address',
    });
    expect(result.exitCode).to.equal(9);
    expect(result.json.error.code).to.equal('E_CHECK_FAILED');
    const checks = result.json.error.details.checks;
    expect(statuses(checks)).to.deep.include({configuration: 'failed', database: 'failed', storage: 'failed', key: 'skipped', notifications: 'failed'});
    expect(result.json.error.message).to.equal('4 checks failed: configuration, database, storage, notifications');
    expect(checks.find((check: {check: string}) => check.check === 'database').suggestion).to.include('Check that PostgreSQL is running');
    expect(checks.find((check: {check: string}) => check.check === 'notifications').detail).to.include("NOTIFY_EMAIL_TO holds 'not-an-address'");
    const text = await workspace.run(['check'], {BACKUP_DIR: '/etc/passwd'});
    expect(text.exitCode).to.equal(9);
    expect(text.stdout).to.match(/FAIL\s+storage\s+unable to open backup storage '\/etc\/passwd'/);
    expect(text.stdout).to.include('To do:');
  });

  it('fails the key check when the configured key does not authenticate the newest backup', async function () {
    await workspace.backup();
    const result = await workspace.run(['check', '--json'], {BACKUP_ENCRYPTION_KEY: 'another-key-0123456789-abcdefghijklmnop'});
    expect(result.exitCode).to.equal(9);
    const key = result.json.error.details.checks.find((check: {check: string}) => check.check === 'key');
    expect(key.status).to.equal('failed');
    expect(key.detail).to.match(/the key does not authenticate the newest backup \(backup_hourly_/);
  });

  it('reports a sink whose test.ping does not arrive', async function () {
    receiver.answer = 500;
    const result = await workspace.run(['check', '--notify-test', '--json'], {NOTIFY_WEBHOOK_URL: receiver.url});
    expect(result.exitCode).to.equal(9);
    const webhook = result.json.error.details.checks.find((check: {check: string}) => check.check === 'notify:webhook');
    expect(webhook).to.deep.include({status: 'failed', detail: `${receiver.url}: test.ping not delivered: the receiver answered HTTP 500`});
  });

  it('leaves a probe a killed check left to cleanup, once it is old, and never a young one', async function () {
    await workspace.backup();
    const old = path.join(workspace.backupDir, 'synapse-backup-check.0123456789ab.probe');
    const young = path.join(workspace.backupDir, 'synapse-backup-check.ba9876543210.probe');
    await writeFile(old, 'probe');
    await writeFile(young, 'probe');
    await utimes(old, new Date(Date.now() - 2 * 3_600_000), new Date(Date.now() - 2 * 3_600_000));
    const result = await workspace.run(['backup', 'cleanup', '--json']);
    expect(result.exitCode).to.equal(0);
    expect(result.json.result.leftovers).to.deep.equal(['synapse-backup-check.0123456789ab.probe']);
    expect(await workspace.backupFiles()).to.include('synapse-backup-check.ba9876543210.probe').and.not.include('synapse-backup-check.0123456789ab.probe');
  });
});
