import {expect} from 'chai';

import type {ArchiverState} from '../../src/core/postgres/index.js';
import {evaluateArchive, type ArchiveInput} from '../../src/core/status/index.js';

const now = new Date('2026-12-02T12:00:00Z');
const minutesAgo = (minutes: number): Date => new Date(now.getTime() - minutes * 60_000);

const healthyServer: ArchiverState = {
  archiveMode: 'on',
  archiveTimeoutMs: 60_000,
  lastArchivedWal: '000000010000000000000010',
  lastArchivedAt: minutesAgo(1),
  failedCount: 0,
  lastFailedWal: undefined,
  lastFailedAt: undefined,
  currentWal: '000000010000000000000011',
  pendingSegments: 0,
};

function input(changes: {newestMinutesAgo?: number | null; rejected?: number; server?: Partial<ArchiverState> | {unavailable: string}; warn?: number; critical?: number}): ArchiveInput {
  const newest = changes.newestMinutesAgo === null ? undefined : {file: '000000010000000000000010', key: 'wal/x', archivedAt: minutesAgo(changes.newestMinutesAgo ?? 1)};
  return {
    now,
    facts: {location: '/backups', present: true, files: 16, keys: [], ...(newest ? {newest} : {}), rejected: Array.from({length: changes.rejected ?? 0}, (_, index) => ({key: `wal/planted-${index}`, reason: 'its content does not match its MAC'}))},
    server: changes.server && 'unavailable' in changes.server ? changes.server : {...healthyServer, ...changes.server},
    policy: {warnAfterMs: changes.warn, criticalAfterMs: changes.critical},
  };
}

describe('the WAL archive in status', function () {
  const cases: Array<[string, ArchiveInput, string[]]> = [
    ['archiving keeps up', input({}), []],
    ['an idle server: old, but the server says nothing waits', input({newestMinutesAgo: 600}), []],
    ['WAL waits and the newest is older than the warning', input({newestMinutesAgo: 7, server: {pendingSegments: 3}}), ['archive_lag:warning']],
    ['WAL waits and the newest is older than the critical age', input({newestMinutesAgo: 20, server: {pendingSegments: 3}}), ['archive_lag:critical']],
    ['the archiver fails', input({server: {lastFailedAt: minutesAgo(0.5), lastFailedWal: '000000010000000000000011', failedCount: 4}}), ['archive_failing:critical']],
    ['a failure followed by a success', input({server: {lastFailedAt: minutesAgo(3), failedCount: 1}}), []],
    ['archive_mode off', input({server: {archiveMode: 'off'}}), ['archive_off:critical']],
    ['the server archived further than this location holds', input({server: {lastArchivedWal: '000000010000000000000014'}}), ['archive_elsewhere:critical']],
    ['the server not heard, the newest recent', input({server: {unavailable: 'refused'}}), []],
    ['the server not heard, the newest old: an idle server cannot be told from a stopped archiver', input({newestMinutesAgo: 8, server: {unavailable: 'refused'}}), ['archive_lag:warning']],
    ['nothing authentic, newer files planted', input({newestMinutesAgo: null, rejected: 2}), ['archive_unauthentic:critical']],
    ['nothing archived yet', input({newestMinutesAgo: null}), ['archive_empty:warning']],
    ['a planted file newer than the newest authentic one', input({rejected: 1}), ['archive_unauthentic:warning']],
    ['thresholds from the settings', input({newestMinutesAgo: 3, server: {pendingSegments: 1}, warn: 60_000, critical: 120_000}), ['archive_lag:critical']],
  ];
  for (const [what, given, expected] of cases) {
    it(what, function () {
      const {problems} = evaluateArchive(given);
      expect(problems.map((problem) => `${problem.id}:${problem.level}`)).to.deep.equal(expected);
      for (const problem of problems) expect(problem.alert).to.equal('alert.archive_lag');
    });
  }

  it('derives its thresholds from archive_timeout: twice and five times it, at least 5 and 15 minutes', function () {
    expect(evaluateArchive(input({})).archive).to.include({warnAfterMs: 300_000, criticalAfterMs: 900_000});
    expect(evaluateArchive(input({server: {archiveTimeoutMs: 600_000}})).archive).to.include({warnAfterMs: 1_200_000, criticalAfterMs: 3_000_000});
    expect(evaluateArchive(input({warn: 3_600_000})).archive).to.include({warnAfterMs: 3_600_000, criticalAfterMs: 3_600_000});
  });
});
