import {expect} from 'chai';

import {isSynapseError} from '../../src/core/errors/index.js';
import {drillSpaceNeeded} from '../../src/core/services/restore/drill-physical.js';
import {parseTargetLsn, parseTargetName, parseTargetTime, type RecoveryTarget} from '../../src/core/services/restore/recovery-target.js';
import {assertSameCluster, judgeReplay, recoveryEndOf, type ReplayExpectation} from '../../src/core/services/restore/replay-judgement.js';

const MB16 = 16 * 1024 * 1024;

function failureOf(action: () => void): string | undefined {
  try {
    action();
  } catch (error) {
    return isSynapseError(error) ? `${error.code}: ${error.message}` : `not a SynapseError: ${String(error)}`;
  }
  return undefined;
}

function expectation(target: RecoveryTarget, overrides: Partial<ReplayExpectation> = {}): ReplayExpectation {
  return {backupName: 'b', timeline: 1, path: [{timeline: 1, firstSegment: 2}], segmentSize: MB16, target, newestWalFile: '00000001000000000000000A', missing: [], ...overrides};
}

describe('judging where a drill recovery ended', function () {
  it('reads the last line of a timeline history file', function () {
    expect(recoveryEndOf('1\t0/A000000\tno recovery target specified\n')).to.deep.equal({timeline: 1, position: 0xa000000n, reason: 'no recovery target specified'});
    expect(recoveryEndOf('1\t0/5000000\tbefore 2026-12-02 14:30:01.123+00\n\n2\t0/9000060\tno recovery target specified\n')).to.deep.include({timeline: 2, position: 0x9000060n});
    expect(recoveryEndOf('')).to.equal(undefined);
    expect(recoveryEndOf('x\tnot-an-lsn\treason\n')).to.equal(undefined);
  });

  const latest: RecoveryTarget = {kind: 'latest'};
  const cases: Array<[string, string, ReplayExpectation, RegExp | undefined]> = [
    ['to the end, into the newest segment', '1\t0/A000100\tno recovery target specified', expectation(latest), undefined],
    ['to the end, exactly at the start of the segment after the newest (a switch)', '1\t0/B000000\tno recovery target specified', expectation(latest), undefined],
    ['stopped at the start of a damaged segment', '1\t0/6000000\tno recovery target specified', expectation(latest), /00000001000000000000000[6] was not replayed, the server could not restore it/],
    ['stopped inside a segment: a record ran into the next, which it did not get', '1\t0/5FFFF00\tno recovery target specified', expectation(latest), /000000010000000000000006 was not replayed/],
    ['stopped at a gap', '1\t0/6000000\tno recovery target specified', expectation(latest, {missing: ['000000010000000000000006']}), /000000010000000000000006 was not replayed, it is missing from the archive/],
    ['on another timeline than the archive was checked along', '2\t0/A000100\tno recovery target specified', expectation(latest), /runs on timeline 1/],
    ['a segment on the path named on its own timeline', '2\t0/6000000\tno recovery target specified', expectation(latest, {timeline: 2, path: [{timeline: 1, firstSegment: 2, lastSegment: 4}, {timeline: 2, firstSegment: 5}]}), /000000020000000000000006 was not replayed/],
    ['at a target time: stopped before the first commit after it', '1\t0/5000100\tbefore 2026-12-02 14:30:00.5+00', expectation(parseTargetTime('2026-12-02 14:30:00')), undefined],
    ['a target time, but it stopped before it', '1\t0/5000100\tbefore 2026-12-02 14:29:59+00', expectation(parseTargetTime('2026-12-02 14:30:00')), /earlier than the target time/],
    ['a target time, but recovery ran to the end', '1\t0/A000100\tno recovery target specified', expectation(parseTargetTime('2026-12-02 14:30:00')), /not at the target time/],
    ['at a target LSN', '1\t0/5000200\tafter LSN 0/5000200', expectation(parseTargetLsn('0/5000200')), undefined],
    ['before a target LSN', '1\t0/5000100\tafter LSN 0/5000100', expectation(parseTargetLsn('0/5000200')), /not at the target position/],
    ['at a restore point', '1\t0/5000200\tat restore point "before-migration"', expectation(parseTargetName('before-migration')), undefined],
    ['at another restore point', '1\t0/5000200\tat restore point "other"', expectation(parseTargetName('before-migration')), /not at the restore point/],
  ];
  for (const [what, history, expected, failure] of cases) {
    it(`${what}: ${failure ? 'fails' : 'passes'}`, function () {
      const result = failureOf(() => judgeReplay(recoveryEndOf(history)!, expected));
      if (failure) {
        expect(result).to.match(/^E_RESTORE_TEST_FAILED: /);
        expect(result).to.match(failure);
      } else expect(result).to.equal(undefined);
    });
  }

  it('refuses a recovered cluster of another system identifier', function () {
    expect(failureOf(() => assertSameCluster('b', '7311', '7311'))).to.equal(undefined);
    expect(failureOf(() => assertSameCluster('b', '7312', '7311'))).to.match(/^E_RESTORE_TEST_FAILED: .*system identifier 7312, not the backup's 7311/);
  });

  it('needs room for the extracted cluster, some WAL and the server', function () {
    expect(drillSpaceNeeded(1000, MB16)).to.equal(1000 + 4 * MB16 + 64 * 1024 * 1024);
  });
});
