import {expect} from 'chai';

import {parseDuration} from '../../src/core/config/duration.js';
import {resolveSettings} from '../../src/core/config/index.js';
import {SynapseError} from '../../src/core/errors/index.js';
import {DEFAULT_EVENT_PATTERNS, Notifier, buildEvent, matchesEvent, outcomeOf, parseEventPatterns, sinkSecrets, summarize} from '../../src/core/notify/index.js';
import {Secret, redact} from '../../src/core/secrets/index.js';

describe('notifications: the pure parts', function () {
  describe('which events a sink gets', function () {
    const cases: Array<[string[], string, boolean]> = [
      [[...DEFAULT_EVENT_PATTERNS], 'backup.failed', true],
      [[...DEFAULT_EVENT_PATTERNS], 'restore.failed', true],
      [[...DEFAULT_EVENT_PATTERNS], 'alert.disk_low', true],
      [[...DEFAULT_EVENT_PATTERNS], 'backup.succeeded', false],
      [[...DEFAULT_EVENT_PATTERNS], 'backup.started', false],
      [[...DEFAULT_EVENT_PATTERNS], 'cleanup.completed', false],
      [['*'], 'cleanup.completed', true],
      [['restore.*'], 'restore.succeeded', true],
      [['restore.*'], 'restore-test.failed', false],
      [['backup.failed'], 'backup.failedx', false],
      [['backup.failed'], 'xbackup.failed', false],
      [['backup.*', 'cleanup.completed'], 'cleanup.completed', true],
    ];
    for (const [patterns, event, expected] of cases) {
      it(`${patterns.join(',')} ${expected ? 'takes' : 'skips'} ${event}`, function () {
        expect(matchesEvent(patterns, event)).to.equal(expected);
      });
    }

    it('reads NOTIFY_<SINK>_EVENTS and refuses what is not a pattern', function () {
      expect(parseEventPatterns('NOTIFY_X_EVENTS', ' backup.failed, Restore.* ,')).to.deep.equal(['backup.failed', 'restore.*']);
      for (const bad of ['', ' , ', 'backup failed', 'backup.(failed)', '../etc']) {
        expect(() => parseEventPatterns('NOTIFY_X_EVENTS', bad), bad).to.throw(SynapseError, /NOTIFY_X_EVENTS/);
      }
    });
  });

  it('warns of an event pattern that matches no event of this version, as a mistyped one would', async function () {
    const sink = {factory: {id: 'webhook', description: '', activatedBy: 'NOTIFY_WEBHOOK_URL', variables: [], create: async () => ({target: 'x', deliver: async () => {}})}, plugin: 'p'};
    const notifier = await Notifier.configure([sink], {NOTIFY_WEBHOOK_URL: 'http://127.0.0.1:1/', NOTIFY_WEBHOOK_EVENTS: 'backup.faild,restore.*'});
    expect(notifier.warnings.join('\n')).to.include("NOTIFY_WEBHOOK_EVENTS names 'backup.faild', which matches no event of this version").and.not.include("'restore.*'");
    const fine = await Notifier.configure([sink], {NOTIFY_WEBHOOK_URL: 'http://127.0.0.1:1/', NOTIFY_WEBHOOK_EVENTS: 'backup.failed,alert.*'});
    expect(fine.warnings).to.deep.equal([]);
  });

  describe('durations', function () {
    const cases: Array<[string, number]> = [
      ['10', 10_000],
      ['10s', 10_000],
      ['500ms', 500],
      ['1.5s', 1500],
      ['90m', 5_400_000],
      ['2h', 7_200_000],
      ['1d', 86_400_000],
    ];
    for (const [text, milliseconds] of cases) {
      it(`reads '${text}' as ${milliseconds} ms`, function () {
        expect(parseDuration('NOTIFY_TIMEOUT', text)).to.equal(milliseconds);
      });
    }
    for (const bad of ['', 'abc', '0', '-1s', '10 parsecs', '1e3']) {
      it(`refuses '${bad}', naming the variable`, function () {
        expect(() => parseDuration('NOTIFY_TIMEOUT', bad)).to.throw(SynapseError, /NOTIFY_TIMEOUT/);
      });
    }
  });

  describe('events', function () {
    it('derives the outcome from the name, for names of later versions too', function () {
      expect(['backup.failed', 'backup.started', 'backup.succeeded', 'cleanup.completed', 'alert.disk_low', 'alert.resolved', 'verify.failed', 'later.news'].map(outcomeOf)).to.deep.equal([
        'failure',
        'started',
        'success',
        'success',
        'failure',
        'success',
        'failure',
        'info',
      ]);
    });

    it('summarizes in one line what a phone notification or a mail subject must say', function () {
      const error = {code: 'E_DUMP_FAILED', exitStatus: 5, message: 'pg_dump exited with status 1', suggestion: 'Read it.'};
      expect(summarize('backup.failed', {operation: 'backup run', database: 'shop', backup: {type: 'daily'}, error}, 'db1')).to.equal(
        "FAILED: backup run (daily) of database 'shop' on db1: E_DUMP_FAILED pg_dump exited with status 1",
      );
      expect(summarize('backup.succeeded', {operation: 'backup run', database: 'shop', backup: {type: 'hourly', name: 'b.sql.gz', storedBytes: 2_450_000}, durationMs: 3100}, 'db1')).to.equal(
        "OK: backup run (hourly) of database 'shop' on db1: b.sql.gz, 2.45 MB, in 3.1 s",
      );
      expect(summarize('test.ping', {operation: 'check'}, 'db1')).to.equal('INFO: test notification on db1');
    });

    it('builds an event with a fresh id, the schema version and only the facts it has', function () {
      const now = new Date('2026-11-29T03:00:00Z');
      const first = buildEvent('backup.failed', {operation: 'backup run', database: 'shop'}, {host: 'db1', toolVersion: '1.2.3', now});
      const second = buildEvent('backup.failed', {operation: 'backup run', database: 'shop'}, {host: 'db1', toolVersion: '1.2.3', now});
      expect(first.id).to.match(/^[0-9a-f-]{36}$/).and.not.equal(second.id);
      const {id: _id, ...rest} = first;
      expect(rest).to.deep.equal({
        schemaVersion: 1,
        event: 'backup.failed',
        outcome: 'failure',
        time: '2026-11-29T03:00:00.000Z',
        host: 'db1',
        operation: 'backup run',
        tool: {name: 'synapse-backup', version: '1.2.3'},
        database: 'shop',
        summary: "FAILED: backup run of database 'shop' on db1",
      });
    });
  });

  describe('secrets of the sinks', function () {
    it('removes a secret value, the password of a URL and the token path of a webhook URL from messages', function () {
      const secrets = sinkSecrets(['https://hooks.slack.com/services/T0/B0/TOKEN123', 'smtp://mailer:p%40ss-word@mail.example.com:587', 'hmac-secret-value', undefined, '']);
      const message = 'POST https://hooks.slack.com/services/T0/B0/TOKEN123 failed; /services/T0/B0/TOKEN123 again; login mailer:p@ss-word; hmac-secret-value';
      const clean = redact(message, secrets);
      for (const secret of ['TOKEN123', 'p@ss-word', 'p%40ss-word', 'hmac-secret-value']) expect(clean).not.to.include(secret);
      expect(clean).to.include('mail');
    });

    it('refuses a sink secret too short to be removed from messages without blanking ordinary words', async function () {
      const factory = {id: 'email', description: '', activatedBy: 'NOTIFY_EMAIL_TO', variables: [{name: 'NOTIFY_SMTP_URL', description: '', secret: true}], create: async () => ({target: 'x', deliver: async () => {}})};
      const refused = await Notifier.configure([{factory, plugin: 'p'}], {NOTIFY_EMAIL_TO: 'a@b.c', NOTIFY_SMTP_URL: 'smtp://u:short@mail.example:587'});
      expect(refused.sinks).to.deep.equal([]);
      expect(refused.warnings.join('\n')).to.include('the password in NOTIFY_SMTP_URL is 5 characters long: too short to be a secret');
      expect(refused.redact('this is too short to be a secret')).to.equal('this is too short to be a secret');
      const fine = await Notifier.configure([{factory, plugin: 'p'}], {NOTIFY_EMAIL_TO: 'a@b.c', NOTIFY_SMTP_URL: 'smtp://u:long-enough-secret@mail.example:587'});
      expect(fine.sinks).to.have.length(1);
      expect(fine.redact('login u:long-enough-secret failed')).to.equal('login u:[redacted] failed');
    });

    it('redacts no secret shorter than the threshold, so no ordinary word is blanked', function () {
      expect(redact('is too short to be a secret', [new Secret('short')])).to.equal('is too short to be a secret');
    });

    it('keeps the sinks\' credentials from storage and encryption plugins', function () {
      const settings = resolveSettings({process: {NOTIFY_SLACK_WEBHOOK_URL: 'https://hooks.example/T/B/X', NOTIFY_SMTP_URL: 'smtp://u:p@h', BACKUP_DIR: '/srv/b'}, dotenv: {}, cwd: '/srv'}, {uses: []});
      expect(Object.keys(settings.env).filter((name) => name.startsWith('NOTIFY_'))).to.deep.equal([]);
      expect(settings.env.BACKUP_DIR).to.equal('/srv/b');
    });
  });
});
