import {expect} from 'chai';
import {createHmac} from 'node:crypto';
import {hostname} from 'node:os';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {startHttpReceiver, type HttpReceiver} from '../../helpers/receivers.js';
import {createWorkspace, TEST_KEY, type Workspace} from '../../helpers/workspace.js';

const SECRET = 'webhook-secret-0123456789abcdef';
/** A database URL nothing answers on: the backup fails at its first step, as with a server that is down. */
const DOWN = 'postgresql://postgres@127.0.0.1:1/nowhere';

/**
 * The webhook, Slack and heartbeat sinks, each against a real HTTP server on loopback, driven by
 * real backups: what arrives, when, signed how, and what a failing receiver does to the run (nothing).
 */
describe('HTTP notification sinks', function () {
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

  describe('webhook', function () {
    it('POSTs a failed backup as JSON, signed so the receiver can verify it and reject replays', async function () {
      const result = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: DOWN, NOTIFY_WEBHOOK_URL: `${receiver.url}/hooks/backup`, NOTIFY_WEBHOOK_SECRET: SECRET});
      expect(result.exitCode).to.equal(3);
      expect(receiver.requests).to.have.length(1);
      const [request] = receiver.requests;
      expect(request!.method).to.equal('POST');
      expect(request!.path).to.equal('/hooks/backup');
      expect(request!.headers['content-type']).to.equal('application/json');
      expect(request!.headers['x-synapse-signature']).to.equal(`sha256=${createHmac('sha256', SECRET).update(request!.body).digest('hex')}`);
      expect(Math.abs(Number(request!.headers['x-synapse-timestamp']) - Date.now() / 1000)).to.be.below(60);
      const event = JSON.parse(request!.body);
      expect(request!.headers['x-synapse-delivery']).to.equal(event.id);
      expect(event).to.deep.include({schemaVersion: 1, event: 'backup.failed', outcome: 'failure', host: hostname(), operation: 'backup run', database: 'nowhere'});
      expect(event.backup).to.deep.equal({type: 'hourly'});
      expect(event.tool).to.deep.equal({name: 'synapse-backup', version: '0.1.0'});
      expect(event.storage).to.deep.equal({scheme: 'local', location: workspace.backupDir});
      expect(event.error).to.include({code: 'E_DB_UNREACHABLE', exitStatus: 3});
      expect(event.error.suggestion).to.include('Check that PostgreSQL is running');
      expect(event.summary).to.equal(`FAILED: backup run (hourly) of database 'nowhere' on ${hostname()}: E_DB_UNREACHABLE ${event.error.message}`);
      expect(request!.body).not.to.include(TEST_KEY);
      expect(request!.body).not.to.include(SECRET);
    });

    it('sends successes only when NOTIFY_WEBHOOK_EVENTS asks for them, with what was stored', async function () {
      await workspace.backup({NOTIFY_WEBHOOK_URL: receiver.url});
      expect(receiver.requests, 'default: failures and alerts only').to.have.length(0);
      const name = await workspace.backup({NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_WEBHOOK_EVENTS: 'backup.*'}, 'daily');
      expect(receiver.requests.map((request) => JSON.parse(request.body).event)).to.deep.equal(['backup.started', 'backup.succeeded']);
      const event = JSON.parse(receiver.requests[1]!.body);
      const metadata = await workspace.readMetadata(name);
      expect(event.backup).to.deep.equal({
        name,
        type: 'daily',
        storedBytes: metadata.sizes.storedBytes,
        plaintextBytes: metadata.sizes.plaintextBytes,
        sha256: metadata.checksums.stored,
        compression: 'gzip',
        encrypted: true,
      });
      expect(event.database).to.equal(workspace.database);
      expect(event.durationMs).to.be.a('number');
      expect(request(receiver, 1).headers['x-synapse-signature'], 'no secret, no signature').to.equal(undefined);
    });

    it('reports a restore and a cleanup', async function () {
      const name = await workspace.backup();
      const events = {NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_WEBHOOK_EVENTS: 'restore.*,cleanup.*'};
      expect((await workspace.run(['backup', 'restore', name, '--yes', '--json'], events)).exitCode).to.equal(0);
      expect((await workspace.run(['backup', 'restore', 'backup_hourly_20200101_000000.sql.gz.enc', '--yes', '--json'], events)).exitCode).to.equal(10);
      expect((await workspace.run(['backup', 'cleanup', '--json'], events)).exitCode).to.equal(0);
      const received = receiver.requests.map((entry) => JSON.parse(entry.body));
      expect(received.map((event) => event.event)).to.deep.equal(['restore.succeeded', 'restore.failed', 'cleanup.completed']);
      expect(received[0].backup).to.include({name, type: 'hourly'});
      expect(received[0].database).to.equal(workspace.database);
      expect(received[1].error.code).to.equal('E_BACKUP_NOT_FOUND');
      expect(received[1].backup.name).to.equal('backup_hourly_20200101_000000.sql.gz.enc');
      expect(received[2].details).to.include({dryRun: false, kept: 1});
    });

    it('notifies failures that happen before anything runs: bad configuration, a plugin that fails to load', async function () {
      const badConfig = await workspace.run(['backup', 'run', '--json'], {BACKUP_COMPRESSION: 'bogus', NOTIFY_WEBHOOK_URL: receiver.url});
      expect(badConfig.exitCode).to.equal(2);
      const brokenPlugin = {SYNAPSE_BACKUP_DATA_DIR: path.join(workspace.cwd, 'data'), NOTIFY_WEBHOOK_URL: receiver.url};
      const link = await workspace.run(['plugins', 'link', '--no-install', path.join(PROJECT_ROOT, 'test', 'fixtures', 'plugins', 'broken-hook')], brokenPlugin);
      expect(link.exitCode, link.stderr).to.equal(0);
      const pluginFailure = await workspace.run(['backup', 'run', '--json'], brokenPlugin);
      expect(pluginFailure.exitCode).to.equal(8);
      const received = receiver.requests.map((entry) => JSON.parse(entry.body));
      expect(received.map((event) => [event.event, event.error.code, event.database])).to.deep.equal([
        ['backup.failed', 'E_CONFIG', workspace.database],
        ['backup.failed', 'E_PLUGIN', workspace.database],
      ]);
      expect(received[0].error.message).to.include('BACKUP_COMPRESSION');
    });

    it('never changes the outcome: a receiver that fails is retried once, then a warning in --json', async function () {
      receiver.answer = 503;
      const failed = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: DOWN, NOTIFY_WEBHOOK_URL: `${receiver.url}/token-in-path-9f8e7d`});
      expect(failed.exitCode).to.equal(3);
      expect(failed.json.error.code).to.equal('E_DB_UNREACHABLE');
      expect(receiver.requests).to.have.length(2);
      expect(JSON.parse(receiver.requests[0]!.body).id).to.equal(JSON.parse(receiver.requests[1]!.body).id);
      const warning = failed.json.warnings.find((text: string) => text.includes('webhook'));
      expect(warning).to.equal(`unable to notify the webhook sink (${receiver.url}) of backup.failed: the receiver answered HTTP 503`);
      expect(failed.stdout + failed.stderr).not.to.include('token-in-path');

      receiver.answer = 400;
      const succeeded = await workspace.run(['backup', 'run', '--json'], {NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_WEBHOOK_EVENTS: 'backup.succeeded'});
      expect(succeeded.exitCode).to.equal(0);
      expect(receiver.requests, 'a 400 is not retried').to.have.length(3);
      expect(succeeded.json.warnings.join('\n')).to.include('of backup.succeeded: the receiver answered HTTP 400');
    });

    it('bounds a receiver that never answers by NOTIFY_TIMEOUT, and the run still ends as it would have', async function () {
      receiver.answer = 'never';
      const started = Date.now();
      const result = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: DOWN, NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_TIMEOUT: '1s'});
      expect(result.exitCode).to.equal(3);
      expect(Date.now() - started).to.be.below(15_000);
      expect(result.json.warnings.join('\n')).to.include('of backup.failed: no answer within 1 s (NOTIFY_TIMEOUT)');
    });
  });

  describe('slack', function () {
    it('posts a message that names the host, database, type, error and fix', async function () {
      const url = `${receiver.url}/services/T000/B000/XXXXSECRETXXXX`;
      const result = await workspace.run(['backup', 'run', '--backup-type', 'daily', '--json'], {DATABASE_URL: DOWN, NOTIFY_SLACK_WEBHOOK_URL: url});
      expect(result.exitCode).to.equal(3);
      expect(receiver.requests).to.have.length(1);
      expect(receiver.requests[0]!.path).to.equal('/services/T000/B000/XXXXSECRETXXXX');
      const message = JSON.parse(receiver.requests[0]!.body);
      expect(message.text).to.match(new RegExp(`^:red_circle: FAILED: backup run \\(daily\\) of database 'nowhere' on ${hostname()}: E_DB_UNREACHABLE`));
      const details = message.blocks.map((block: {text: {text: string}}) => block.text.text).join('\n');
      expect(details).to.include('*Error:* E_DB_UNREACHABLE: unable to connect');
      expect(details).to.include('*Fix:* Check that PostgreSQL is running');
      expect(details).to.include(`*Storage:* local ${workspace.backupDir}`);

      receiver.answer = 500;
      const again = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: DOWN, NOTIFY_SLACK_WEBHOOK_URL: url});
      const everything = again.stdout + again.stderr;
      expect(everything).to.include(`unable to notify the slack sink (Slack webhook at 127.0.0.1:`);
      expect(everything).not.to.include('XXXXSECRETXXXX');
    });
  });

  describe('heartbeat', function () {
    it('answers check --notify-test on /log, which does not count as a success (the switch is not reset without a backup)', async function () {
      const check = await workspace.run(['check', '--notify-test', '--json'], {NOTIFY_HEARTBEAT_URL: `${receiver.url}/ping/abc-123`});
      expect((check.json.result ?? check.json.error.details).checks.find((found: {check: string}) => found.check === 'notify:heartbeat').status).to.equal('ok');
      expect(receiver.requests.map((entry) => entry.path)).to.deep.equal(['/ping/abc-123/log']);
    });

    it('pings /start and then the URL when a backup succeeds, /start and /fail when it fails, even on bad configuration', async function () {
      const env = {NOTIFY_HEARTBEAT_URL: `${receiver.url}/ping/abc-123`};
      await workspace.backup(env);
      expect((await workspace.run(['backup', 'run', '--json'], {...env, DATABASE_URL: DOWN})).exitCode).to.equal(3);
      expect((await workspace.run(['backup', 'run', '--json'], {...env, BACKUP_RETENTION_DAILY: 'x', BACKUP_COMPRESSION: 'bogus'})).exitCode).to.equal(2);
      expect(receiver.requests.map((entry) => entry.path)).to.deep.equal([
        '/ping/abc-123/start',
        '/ping/abc-123',
        '/ping/abc-123/start',
        '/ping/abc-123/fail',
        '/ping/abc-123/start',
        '/ping/abc-123/fail',
      ]);
      expect(receiver.requests[3]!.body).to.include('E_DB_UNREACHABLE');
      // Cleanup and restore do not ping unless asked: the check is about backups running.
      expect((await workspace.run(['backup', 'cleanup', '--json'], env)).exitCode).to.equal(0);
      expect(receiver.requests).to.have.length(6);
    });
  });

  it('delivers to several sinks in parallel, each bounded on its own', async function () {
    const slow = await startHttpReceiver('never');
    try {
      const started = Date.now();
      const result = await workspace.run(['backup', 'run', '--json'], {
        DATABASE_URL: DOWN,
        NOTIFY_TIMEOUT: '2s',
        NOTIFY_WEBHOOK_URL: slow.url,
        NOTIFY_SLACK_WEBHOOK_URL: `${slow.url}/slack`,
        NOTIFY_HEARTBEAT_URL: receiver.url,
      });
      expect(result.exitCode).to.equal(3);
      // Two sinks that never answer cost one timeout, not two.
      expect(Date.now() - started).to.be.below(2000 + 3000);
      expect(receiver.requests.map((entry) => entry.path)).to.deep.equal(['/start', '/fail']);
      expect(result.json.warnings.filter((text: string) => text.includes('no answer within 2 s'))).to.have.length(2);
    } finally {
      await slow.close();
    }
  });
});

function request(receiver: HttpReceiver, index: number) {
  return receiver.requests[index]!;
}
