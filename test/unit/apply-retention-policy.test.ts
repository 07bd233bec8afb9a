import {expect} from 'chai';

import type {BackupType} from '../../src/core/naming/index.js';
import {applyRetentionPolicy, type BackupHealth, type RetentionCandidate, type RetentionPolicy} from '../../src/core/retention/index.js';

function backup(type: BackupType, hoursAgo: number, health: BackupHealth = 'good', sequence = 0, extra: Partial<RetentionCandidate> = {}): RetentionCandidate {
  const startedAt = new Date(Date.UTC(2026, 5, 1) - hoursAgo * 3_600_000);
  return {name: `${type}-${hoursAgo}${sequence ? `-${sequence}` : ''}`, type, database: 'app', startedAt, sequence, health, verified: true, ...extra};
}

function of(database: string, candidate: RetentionCandidate): RetentionCandidate {
  return {...candidate, database, name: `${database}:${candidate.name}`};
}

function series(type: BackupType, count: number): RetentionCandidate[] {
  return Array.from({length: count}, (_, index) => backup(type, index));
}

interface Case {
  readonly title: string;
  readonly candidates: RetentionCandidate[];
  readonly policy: RetentionPolicy;
  readonly removed: string[];
}

const standard: RetentionPolicy = {hourly: 24, daily: 30, monthly: 12};

const cases: Case[] = [
  {title: 'nothing to do on an empty storage', candidates: [], policy: standard, removed: []},
  {title: 'keeps all while under quota', candidates: series('hourly', 24), policy: standard, removed: []},
  {title: 'removes the oldest hourly beyond 24', candidates: series('hourly', 26), policy: standard, removed: ['hourly-24', 'hourly-25']},
  {
    title: 'counts each type on its own',
    candidates: [...series('hourly', 3), ...series('daily', 3), ...series('monthly', 3)],
    policy: {hourly: 1, daily: 2, monthly: 3},
    removed: ['hourly-1', 'hourly-2', 'daily-2'],
  },
  {
    title: 'orders by time, not by input order',
    candidates: [backup('daily', 5), backup('daily', 1), backup('daily', 9), backup('daily', 3)],
    policy: {...standard, daily: 2},
    removed: ['daily-5', 'daily-9'],
  },
  {
    title: 'orders two backups of the same second by sequence',
    candidates: [backup('hourly', 0, 'good', 0), backup('hourly', 0, 'good', 1)],
    policy: {...standard, hourly: 1},
    removed: ['hourly-0'],
  },
  {
    title: 'always keeps the newest good backup, even with a quota of 0',
    candidates: series('monthly', 3),
    policy: {...standard, monthly: 0},
    removed: ['monthly-1', 'monthly-2'],
  },
  {
    title: 'never removes a backup whose metadata is missing or unreadable, nor counts it',
    candidates: [backup('hourly', 0, 'metadata-missing'), backup('hourly', 1), backup('hourly', 2, 'metadata-unreadable'), backup('hourly', 3)],
    policy: {...standard, hourly: 1},
    removed: ['hourly-3'],
  },
  {
    title: 'keeps the newest good backup when newer ones are broken',
    candidates: [backup('daily', 0, 'metadata-missing'), backup('daily', 1, 'metadata-missing'), backup('daily', 2)],
    policy: {...standard, daily: 0},
    removed: [],
  },
  {
    title: 'removes metadata left without its backup file, without counting it',
    candidates: [backup('hourly', 0, 'data-missing'), backup('hourly', 1), backup('hourly', 2)],
    policy: {...standard, hourly: 2},
    removed: ['hourly-0'],
  },
  {
    title: 'counts each database on its own: one database never pushes out another',
    candidates: [of('app', backup('hourly', 0)), of('big', backup('hourly', 1)), of('big', backup('hourly', 2)), of('app', backup('hourly', 3))],
    policy: {...standard, hourly: 1},
    removed: ['big:hourly-2', 'app:hourly-3'],
  },
  {
    title: 'keeps an older backup until the newer ones that replace it are verified',
    candidates: [backup('hourly', 0, 'good', 0, {verified: false}), backup('hourly', 1), backup('hourly', 2)],
    policy: {...standard, hourly: 2},
    removed: [],
  },
  {
    title: 'an unverified backup beyond the quota does not hold back older ones',
    candidates: [backup('hourly', 0), backup('hourly', 1, 'good', 0, {verified: false}), backup('hourly', 2)],
    policy: {...standard, hourly: 1},
    removed: ['hourly-1', 'hourly-2'],
  },
  {
    title: 'a damaged newer backup is not counted, so the older intact one stays',
    candidates: [backup('hourly', 0, 'damaged'), backup('hourly', 1)],
    policy: {...standard, hourly: 1},
    removed: [],
  },
  {
    title: 'never removes or counts a forged or unsigned backup',
    candidates: [backup('daily', 0, 'forged'), backup('daily', 1, 'unsigned'), backup('daily', 2), backup('daily', 3)],
    policy: {...standard, daily: 1},
    removed: ['daily-3'],
  },
  {
    title: 'removes what a killed run left, without counting it',
    candidates: [backup('hourly', 0, 'incomplete'), backup('hourly', 1)],
    policy: {...standard, hourly: 1},
    removed: ['hourly-0'],
  },
];

describe('applyRetentionPolicy', function () {
  for (const testCase of cases) {
    it(testCase.title, function () {
      const decisions = applyRetentionPolicy(testCase.candidates, testCase.policy);
      expect(decisions).to.have.length(testCase.candidates.length);
      expect(decisions.filter((decision) => decision.action === 'remove').map((decision) => decision.name).sort()).to.deep.equal([...testCase.removed].sort());
      for (const decision of decisions) expect(decision.reason).to.be.a('string').and.not.empty;
    });
  }

  it('explains each decision', function () {
    const decisions = applyRetentionPolicy(series('hourly', 3), {...standard, hourly: 2});
    expect(decisions.map((decision) => decision.reason)).to.deep.equal([
      'within the newest 2 hourly backups (#1)',
      'within the newest 2 hourly backups (#2)',
      'beyond the newest 2 hourly backups (#3), which are verified',
    ]);
  });

  it('applies its counts only to the database it manages, keeping every other database\'s backups', function () {
    const candidates = [...series('hourly', 3).map((candidate) => ({...candidate, database: 'a'})), ...series('hourly', 3).map((candidate) => ({...candidate, name: `b-${candidate.name}`, database: 'b'}))];
    const scoped = applyRetentionPolicy(candidates, {...standard, hourly: 1}, {database: 'b'});
    expect(scoped.filter((decision) => decision.action === 'remove').map((decision) => decision.name).sort()).to.deep.equal(['b-hourly-1', 'b-hourly-2']);
    expect(scoped.filter((decision) => decision.database === 'a').map((decision) => decision.reason)).to.deep.equal(Array(3).fill("a backup of another database: this cleanup manages 'b' (--all-databases for every database)"));
    const everywhere = applyRetentionPolicy(candidates, {...standard, hourly: 1}, {database: undefined});
    expect(everywhere.filter((decision) => decision.action === 'remove')).to.have.length(4);
  });

  it('keeps a backup beyond the quota that the storage still retains (Object Lock), saying until when, and removes it once retention ends', function () {
    const now = new Date(Date.UTC(2026, 5, 1));
    const candidates = [backup('hourly', 0), backup('hourly', 1, 'good', 0, {retainedUntil: new Date(now.getTime() + 3_600_000)}), backup('hourly', 2, 'good', 0, {retainedUntil: new Date(now.getTime() - 1)})];
    const decisions = applyRetentionPolicy(candidates, {...standard, hourly: 1}, {database: undefined, now});
    expect(decisions.map((decision) => decision.action)).to.deep.equal(['keep', 'keep', 'remove']);
    expect(decisions[1]!.reason).to.equal('beyond the newest 1 hourly backups (#2), but the storage retains it until 2026-06-01T01:00:00.000Z (Object Lock)');
  });

  it('names the backups that must be verified before an older one may go', function () {
    const candidates = [backup('hourly', 0, 'good', 0, {verified: false}), backup('hourly', 1, 'good', 0, {verified: false}), backup('hourly', 2)];
    const decisions = applyRetentionPolicy(candidates, {...standard, hourly: 2});
    expect(decisions[2]).to.include({action: 'keep', reason: 'beyond the newest 2 hourly backups (#3), but kept until 2 newer backups are verified'});
    expect(decisions[2]!.awaitingVerification).to.deep.equal(['hourly-0', 'hourly-1']);
  });
});
