import {expect} from 'chai';

import {formatAge, formatPrometheus, sparkline} from '../../src/cli/format/index.js';
import {SynapseError} from '../../src/core/errors/index.js';
import type {JournalEntry} from '../../src/core/journal/index.js';
import {DEFAULT_STATUS_POLICY, EMPTY_ALERT_STATE, evaluateStatus, exitStatusOf, nextAlertState, planAlerts, statusPolicyFrom, type BackupFact, type StatusInput, type StatusProblem} from '../../src/core/status/index.js';

const NOW = new Date('2026-11-29T12:00:00Z');
const HOUR = 3_600_000;

function backup(type: BackupFact['type'], hoursAgo: number, storedBytes = 1000, database = 'shop'): BackupFact {
  const at = new Date(NOW.getTime() - hoursAgo * HOUR);
  return {name: `backup_${type}_${hoursAgo}`, database, type, createdAt: at, completedAt: at, storedBytes, durationMs: 1000};
}

function run(operation: JournalEntry['operation'], outcome: JournalEntry['outcome'], hoursAgo: number, extra: Partial<JournalEntry> = {}): JournalEntry {
  const at = new Date(NOW.getTime() - hoursAgo * HOUR).toISOString();
  return {formatVersion: 1, kind: 'synapse-backup/run', operation, outcome, startedAt: at, finishedAt: at, durationMs: 1, host: 'db1', database: 'shop', failureCount: outcome === 'failed' ? 1 : 0, ...extra};
}

function input(overrides: Partial<StatusInput>): StatusInput {
  return {now: NOW, databases: ['shop'], backups: [], unusable: [], journal: [], rejectedJournalEntries: 0, location: '/b', space: {freeBytes: 50, totalBytes: 100}, policy: DEFAULT_STATUS_POLICY, ...overrides};
}

describe('status: the pure parts', function () {
  describe('evaluating', function () {
    const cases: Array<[string, Partial<StatusInput>, string, string[]]> = [
      ['no backups at all: never OK', {}, 'critical', ['no_good_backup:shop']],
      ['backups present, none authentic', {unusable: [{database: undefined, reason: 'not authentic'}, {database: 'shop', reason: 'not authentic'}]}, 'critical', ['no_good_backup:shop']],
      ['only another database has backups', {backups: [backup('daily', 1, 1000, 'other')]}, 'critical', ['no_good_backup:shop']],
      ['every database asked for, none has a backup', {databases: []}, 'critical', ['no_good_backup']],
      ['metadata this user cannot read', {backups: [backup('hourly', 1)], unusable: [{database: undefined, reason: 'unreadable', unreadable: 'EACCES'}]}, 'unknown', ['storage_unreadable']],
      ['metadata unreadable and no good backup: critical wins', {unusable: [{database: undefined, reason: 'unreadable', unreadable: 'EACCES'}]}, 'critical', ['no_good_backup:shop', 'storage_unreadable']],
      ['a damaged backup beside a good one', {backups: [backup('hourly', 1)], unusable: [{database: 'shop', reason: 'damaged'}]}, 'ok', []],
      ['a fresh hourly backup', {backups: [backup('hourly', 0.5)]}, 'ok', []],
      ['an hourly backup just past 2 h', {backups: [backup('hourly', 2.1)]}, 'critical', ['backup_overdue:shop:hourly']],
      ['a daily backup 25 h old is still current', {backups: [backup('daily', 25)]}, 'ok', []],
      ['a daily backup 27 h old', {backups: [backup('daily', 27)]}, 'critical', ['backup_overdue:shop:daily']],
      ['a monthly backup 31 days old is current', {backups: [backup('monthly', 31 * 24)]}, 'ok', []],
      ['a configured type with no backup', {backups: [backup('hourly', 1)], policy: {...DEFAULT_STATUS_POLICY, types: ['hourly', 'monthly']}}, 'critical', ['backup_overdue:shop:monthly']],
      ['a shorter max age', {backups: [backup('hourly', 1)], policy: {...DEFAULT_STATUS_POLICY, maxAgeMs: {...DEFAULT_STATUS_POLICY.maxAgeMs, hourly: 0.5 * HOUR}}}, 'critical', ['backup_overdue:shop:hourly']],
      ['another database is not ours', {backups: [backup('hourly', 1), backup('daily', 100, 1000, 'other')]}, 'ok', []],
      ['19% free', {backups: [backup('hourly', 1)], space: {freeBytes: 19, totalBytes: 100}}, 'warning', ['disk_low']],
      ['20% free', {backups: [backup('hourly', 1)], space: {freeBytes: 20, totalBytes: 100}}, 'ok', []],
      ['unknown free space', {backups: [backup('hourly', 1)], space: undefined}, 'ok', []],
      ['the newest at 40% of the median', {backups: [backup('hourly', 3, 1000), backup('hourly', 2, 1100), backup('hourly', 1, 900), backup('hourly', 0.5, 400)]}, 'warning', ['backup_size_drop:shop:hourly:backup_hourly_0.5']],
      ['the newest at 60% of the median', {backups: [backup('hourly', 3, 1000), backup('hourly', 2, 1000), backup('hourly', 0.5, 600)]}, 'ok', []],
      ['a single backup has no trend', {backups: [backup('hourly', 0.5, 1)]}, 'ok', []],
      ['the newest backup run failed', {backups: [backup('hourly', 1)], journal: [run('backup', 'failed', 0.2, {backupType: 'hourly', error: {code: 'E_DUMP_FAILED', message: 'x'}}), run('backup', 'succeeded', 1, {backupType: 'hourly'})]}, 'warning', ['backup_failed:shop:hourly']],
      ['a failed backup run followed by a good one', {backups: [backup('hourly', 0.1)], journal: [run('backup', 'succeeded', 0.1, {backupType: 'hourly'}), run('backup', 'failed', 0.2, {backupType: 'hourly'})]}, 'ok', []],
      ['the last restore test failed', {backups: [backup('hourly', 1)], journal: [run('restore-test', 'failed', 5), run('restore-test', 'succeeded', 200)]}, 'warning', ['restore_test_failed']],
      ['a failed restore test followed by a good one', {backups: [backup('hourly', 1)], journal: [run('restore-test', 'succeeded', 5), run('restore-test', 'failed', 200)]}, 'ok', []],
      ['a failed drill of a physical backup, a good logical test after it: each method on its own', {backups: [backup('hourly', 1)], journal: [run('restore-test', 'succeeded', 1, {backupName: 'backup_daily_20261129_020000.sql.gz.enc'}), run('restore-test', 'failed', 5, {backupName: 'backup_daily_20261129_010000.tar.zst.enc'})]}, 'warning', ['restore_test_failed:physical']],
      ['a good drill after a failed logical test does not hide it', {backups: [backup('hourly', 1)], journal: [run('restore-test', 'succeeded', 1, {backupName: 'backup_daily_20261129_010000.tar.zst.enc'}), run('restore-test', 'failed', 5, {backupName: 'backup_daily_20261129_020000.sql.gz.enc'})]}, 'warning', ['restore_test_failed']],
      ['the last good drill is older than a week', {backups: [backup('hourly', 1)], journal: [run('restore-test', 'succeeded', 8 * 24, {backupName: 'backup_daily_20261121_010000.tar.zst.enc'})]}, 'warning', ['restore_test_stale:physical']],
      ['the last good drill is six days old', {backups: [backup('hourly', 1)], journal: [run('restore-test', 'succeeded', 6 * 24, {backupName: 'backup_daily_20261123_010000.tar.zst.enc'})]}, 'ok', []],
      ['a shorter BACKUP_ALERT_RESTORE_TEST_AGE', {backups: [backup('hourly', 1)], policy: {...DEFAULT_STATUS_POLICY, restoreTestMaxAgeMs: 2 * 24 * HOUR}, journal: [run('restore-test', 'succeeded', 3 * 24, {backupName: 'backup_daily_20261126_020000.sql.gz.enc'})]}, 'warning', ['restore_test_stale:logical']],
    ];
    for (const [what, overrides, level, problems] of cases) {
      it(`${what}: ${level}`, function () {
        const report = evaluateStatus(input(overrides));
        expect(report.level).to.equal(level);
        expect(report.problems.map((problem) => problem.id)).to.deep.equal(problems);
      });
    }

    it('says how many backups do not count, and why, when none is good', function () {
      const report = evaluateStatus(input({unusable: [{database: undefined, reason: 'not authentic'}, {database: 'shop', reason: 'not authentic'}, {database: 'other', reason: 'damaged'}]}));
      expect(report.problems[0]!.message).to.equal("database 'shop' has no good backup in '/b'; '/b' holds 2 backups that do not count (2 not authentic)");
    });

    it('maps the verdict to Nagios exit statuses', function () {
      expect(['ok', 'warning', 'critical', 'unknown'].map((level) => exitStatusOf(level as never))).to.deep.equal([0, 1, 2, 3]);
    });

    it('carries the failure counters and the last successes', function () {
      const report = evaluateStatus(input({journal: [run('verify', 'failed', 1, {failureCount: 4}), run('verify', 'succeeded', 2, {backupName: 'b'}), run('backup', 'failed', 3, {failureCount: 7})]}));
      expect(report.failureCounts).to.include({verify: 4, backup: 7, 'restore-test': 0});
      expect(report.lastSuccess.verify?.backupName).to.equal('b');
      expect(report.lastFailures.map((failure) => failure.operation)).to.deep.equal(['verify', 'backup']);
    });
  });

  describe('reading the thresholds', function () {
    it('reads durations, types and ratios', function () {
      const policy = statusPolicyFrom({BACKUP_ALERT_MAX_AGE_HOURLY: '90m', BACKUP_ALERT_TYPES: 'Daily, hourly', BACKUP_ALERT_MIN_FREE_PERCENT: '10', BACKUP_ALERT_MIN_SIZE_RATIO: '0.25'});
      expect(policy.maxAgeMs.hourly).to.equal(90 * 60_000);
      expect(policy.maxAgeMs.daily).to.equal(26 * HOUR);
      expect(policy.types).to.deep.equal(['daily', 'hourly']);
      expect(policy.minFreePercent).to.equal(10);
      expect(policy.minSizeRatio).to.equal(0.25);
    });

    it('refuses a bare number of max age rather than guess its unit (26 means hours to whoever wrote it)', function () {
      expect(() => statusPolicyFrom({BACKUP_ALERT_MAX_AGE_DAILY: '26'})).to.throw(SynapseError, /BACKUP_ALERT_MAX_AGE_DAILY '26': a bare number has no unit; write it with one, such as 26h/);
      expect(statusPolicyFrom({BACKUP_ALERT_MAX_AGE_DAILY: '26h'}).maxAgeMs.daily).to.equal(26 * 3_600_000);
    });

    for (const [name, value] of [['BACKUP_ALERT_MAX_AGE_DAILY', 'soon'], ['BACKUP_ALERT_TYPES', 'weekly'], ['BACKUP_ALERT_MIN_FREE_PERCENT', '120'], ['BACKUP_ALERT_MIN_SIZE_RATIO', '2'], ['BACKUP_ALERT_MIN_SIZE_RATIO', '-1']] as const) {
      it(`refuses ${name}=${value}, naming it`, function () {
        expect(() => statusPolicyFrom({[name]: value})).to.throw(SynapseError, name);
      });
    }
  });

  describe('de-duplicating alerts', function () {
    const problem = (id: string): StatusProblem => ({id, alert: 'alert.backup_overdue', level: 'critical', message: `${id} stands`});
    const at = (minutes: number): Date => new Date(NOW.getTime() + minutes * 60_000);
    const REPEAT = 60 * 60_000;

    it('sends a new problem, holds it back until the repeat interval, then sends it again', function () {
      let state = EMPTY_ALERT_STATE;
      const steps: Array<[number, string[]]> = [
        [0, ['a']],
        [5, []],
        [59, []],
        [60, ['a']],
        [61, []],
      ];
      for (const [minute, expected] of steps) {
        const plan = planAlerts(state, [problem('a')], at(minute), REPEAT);
        expect(plan.send.map((sent) => sent.id), `minute ${minute}`).to.deep.equal(expected);
        state = nextAlertState(state, [problem('a')], new Set(plan.send.map((sent) => sent.id)), new Set(), at(minute));
      }
    });

    it('never lets a last-sent time in the future, or one it cannot read, silence an alert', function () {
      for (const lastSentAt of [at(60 * 24 * 365).toISOString(), 'yesterday']) {
        const state = {formatVersion: 1 as const, problems: {a: {alert: 'alert.backup_overdue' as const, message: 'a stands', firstSeenAt: at(0).toISOString(), lastSentAt}}};
        expect(planAlerts(state, [problem('a')], at(1), REPEAT).send.map((sent) => sent.id), lastSentAt).to.deep.equal(['a']);
      }
    });

    it('resolves a cleared problem once, and retries what was not delivered', function () {
      let state = nextAlertState(EMPTY_ALERT_STATE, [problem('a'), problem('b')], new Set(['a']), new Set(), at(0));
      // b was never delivered: it is sent again at once, and its end is not news.
      let plan = planAlerts(state, [problem('b')], at(1), REPEAT);
      expect(plan.send.map((sent) => sent.id)).to.deep.equal(['b']);
      expect(plan.resolved.map((cleared) => cleared.id)).to.deep.equal(['a']);
      // The resolution of a failed to go out: it is tried again.
      state = nextAlertState(state, [problem('b')], new Set(['b']), new Set(), at(1));
      plan = planAlerts(state, [], at(2), REPEAT);
      expect(plan.resolved.map((cleared) => cleared.id).sort()).to.deep.equal(['a', 'b']);
      state = nextAlertState(state, [], new Set(), new Set(['a', 'b']), at(2));
      expect(state.problems).to.deep.equal({});
      expect(planAlerts(state, [], at(3), REPEAT).resolved).to.deep.equal([]);
    });
  });

  describe('output', function () {
    it('escapes label values in the Prometheus exposition', function () {
      const report = evaluateStatus(input({databases: ['we"ird\\name\nx'], backups: [backup('hourly', 1, 10, 'we"ird\\name\nx')]}));
      const text = formatPrometheus(report);
      expect(text).to.include('synapse_backup_size_bytes{database="we\\"ird\\\\name\\nx",type="hourly"} 10\n');
      for (const line of text.trimEnd().split('\n')) expect(line, line).to.match(/^(# (HELP|TYPE) synapse_backup_\w+ .+|synapse_backup_\w+(\{.*\})? [-0-9.e+NaN]+)$/);
    });

    it('says ages as people do', function () {
      expect([3_000, 90_000, 45 * 60_000, 2 * HOUR, 26 * HOUR, 27.3 * HOUR, 32 * 24 * HOUR, undefined].map(formatAge)).to.deep.equal(['3 s', '90 s', '45 min', '2 h', '26 h', '27.3 h', '32 d', '-']);
    });

    it('draws a sparkline between the minimum and the maximum', function () {
      expect(sparkline([1, 2, 3, 4, 5, 6, 7, 8])).to.equal('▁▂▃▄▅▆▇█');
      expect(sparkline([5, 5])).to.equal('██');
      expect(sparkline([])).to.equal('');
    });
  });
});
