import {expect} from 'chai';

import {parseWalObjectKey} from '../../src/core/wal/wal-file-names.js';
import {reachAlongPath} from '../../src/core/wal/archive-reach.js';
import {decideWalRetention} from '../../src/core/wal/wal-retention.js';
import {formatLsn, parseLsn, parseSegmentFile, parseTimelineHistory, recoveryPath, walFileOfPosition} from '../../src/core/wal/wal-positions.js';

const MB16 = 16 * 1024 * 1024;
const TAG = 'a'.repeat(64);

describe('WAL positions and segment files', function () {
  const fileCases: Array<[number, string, number, string]> = [
    [1, '0/3000028', MB16, '000000010000000000000003'],
    [1, '0/2FFFFFF', MB16, '000000010000000000000002'],
    [2, '1/0', MB16, '000000020000000100000000'],
    [3, '1/FF000000', MB16, '0000000300000001000000FF'],
    [1, '0/5000000', 64 * 1024 * 1024, '000000010000000000000001'],
    [1, '2/C0000000', 1024 * 1024 * 1024, '000000010000000200000003'],
  ];
  for (const [timeline, lsn, size, expected] of fileCases) {
    it(`names the file of ${lsn} on timeline ${timeline} with ${size / 1024 / 1024} MiB segments ${expected}`, function () {
      expect(walFileOfPosition(timeline, parseLsn(lsn)!, size)).to.equal(expected);
      const parsed = parseSegmentFile(expected, size)!;
      expect(parsed.timeline).to.equal(timeline);
      expect(parsed.segment).to.equal(parseLsn(lsn)! / BigInt(size));
    });
  }

  it('reads and writes LSNs as PostgreSQL prints them, and nothing else', function () {
    expect(formatLsn(parseLsn('0/3000028')!)).to.equal('0/3000028');
    expect(formatLsn(parseLsn('a/b')!)).to.equal('A/B');
    for (const bad of ['', '0/', '/1', '0/123456789', 'g/1', '0-1', '0/1/2']) expect(parseLsn(bad), bad).to.equal(undefined);
    // The low part of a segment name stops below 0x100000000 / segment size.
    expect(parseSegmentFile('000000010000000000000100', MB16)).to.equal(undefined);
  });

  it('parses timeline history files, and refuses what is not one', function () {
    expect(parseTimelineHistory('1\t0/3000060\tno recovery target specified\n\n2\t0/5000000\tat restore point "x"\n')).to.deep.equal([
      {timeline: 1, switchPosition: parseLsn('0/3000060')},
      {timeline: 2, switchPosition: parseLsn('0/5000000')},
    ]);
    expect(parseTimelineHistory('# comment\n')).to.deep.equal([]);
    expect(parseTimelineHistory('one 0/1 x')).to.equal(undefined);
    expect(parseTimelineHistory('1 nowhere')).to.equal(undefined);
  });

  it('follows a recovery path across timelines, taking the child timeline\'s copy of the switch segment', function () {
    const history = parseTimelineHistory('1\t0/5000060\tx\n2\t0/8000000\ty\n')!;
    expect(recoveryPath(1, parseLsn('0/3000028')!, 3, history, MB16)).to.deep.equal([
      {timeline: 1, first: 3n, last: 4n},
      {timeline: 2, first: 5n, last: 7n},
      {timeline: 3, first: 8n, last: undefined},
    ]);
    // A backup on timeline 2 starts there.
    expect(recoveryPath(2, parseLsn('0/6000028')!, 3, history, MB16)).to.deep.equal([
      {timeline: 2, first: 6n, last: 7n},
      {timeline: 3, first: 8n, last: undefined},
    ]);
    // Timeline 1 went on after timeline 2 branched off it: a backup taken there is not on timeline 3's path.
    expect(recoveryPath(1, parseLsn('0/6000028')!, 3, history, MB16)).to.equal(undefined);
    expect(recoveryPath(4, parseLsn('0/6000028')!, 3, history, MB16)).to.equal(undefined);
  });
});

describe('the reach of the archive along a recovery path', function () {
  const at = (minute: number): Date => new Date(Date.UTC(2026, 11, 2, 12, minute));
  const segments = (names: string[]): Array<{file: string; modifiedAt: Date}> => names.map((file, index) => ({file, modifiedAt: at(index)}));
  const path1 = [{timeline: 1, first: 3n, last: undefined}];

  it('runs to the newest segment when nothing is missing', function () {
    const reach = reachAlongPath(segments(['000000010000000000000003', '000000010000000000000004', '000000010000000000000005']), path1, MB16);
    expect(reach.missing).to.deep.equal([]);
    expect(reach.contiguousTo?.file).to.equal('000000010000000000000005');
    expect(reach.contiguousTo?.end).to.equal(6n * BigInt(MB16));
    expect(reach.newest?.file).to.equal('000000010000000000000005');
  });

  it('stops at a gap and names it, but not the segments not archived yet', function () {
    const reach = reachAlongPath(segments(['000000010000000000000003', '000000010000000000000005', '000000010000000000000006']), path1, MB16);
    expect(reach.missing).to.deep.equal(['000000010000000000000004']);
    expect(reach.contiguousTo?.file).to.equal('000000010000000000000003');
    expect(reach.newest?.file).to.equal('000000010000000000000006');
  });

  it('misses the start itself', function () {
    const reach = reachAlongPath(segments(['000000010000000000000004']), path1, MB16);
    expect(reach.missing).to.deep.equal(['000000010000000000000003']);
    expect(reach.contiguousTo).to.equal(undefined);
  });

  it('crosses onto the next timeline at its switch segment, ignoring the old timeline after it', function () {
    const path = [
      {timeline: 1, first: 3n, last: 4n},
      {timeline: 2, first: 5n, last: undefined},
    ];
    const reach = reachAlongPath(segments(['000000010000000000000003', '000000010000000000000004', '000000010000000000000005', '000000020000000000000005', '000000020000000000000006']), path, MB16);
    expect(reach.missing).to.deep.equal([]);
    expect(reach.contiguousTo?.file).to.equal('000000020000000000000006');
    const gap = reachAlongPath(segments(['000000010000000000000003', '000000010000000000000004', '000000010000000000000005', '000000020000000000000006']), path, MB16);
    expect(gap.missing).to.deep.equal(['000000020000000000000005']);
    expect(gap.contiguousTo?.file).to.equal('000000010000000000000004');
  });
});

describe('which archived WAL cleanup keeps', function () {
  const copy = (file: string) => parseWalObjectKey(`wal/${file}-${TAG}.zst.enc`)!;
  const archive = [
    '000000010000000000000001',
    '000000010000000000000002',
    '000000010000000000000002.00000028.backup',
    '000000010000000000000003',
    '000000010000000000000003.partial',
    '00000002.history',
    '000000020000000000000003',
    '000000020000000000000004',
    '000000020000000000000004.00000060.backup',
    '000000020000000000000005',
  ].map(copy);
  const names = (decision: ReturnType<typeof decideWalRetention>): string[] => decision.remove.map((removed) => removed.file.name);

  it('removes everything before the oldest kept backup\'s start segment, oldest first, and keeps history files', function () {
    const decision = decideWalRetention(archive, [{backupName: 'b', startLsn: '0/4000060', walSegmentSize: MB16}, {backupName: 'a', startLsn: '0/3000028', walSegmentSize: MB16}], []);
    expect(names(decision)).to.deep.equal(['000000010000000000000001', '000000010000000000000002', '000000010000000000000002.00000028.backup']);
    expect(decision.keptFrom?.backupName).to.equal('a');
  });

  it('keeps the start segment on every timeline, its .partial and its .backup file', function () {
    const decision = decideWalRetention(archive, [{backupName: 'b', startLsn: '0/4000060', walSegmentSize: MB16}], []);
    expect(names(decision)).to.deep.equal([
      '000000010000000000000001',
      '000000010000000000000002',
      '000000010000000000000002.00000028.backup',
      '000000010000000000000003',
      '000000010000000000000003.partial',
      '000000020000000000000003',
    ]);
  });

  it('removes nothing without a kept physical backup, or while a kept one\'s start is unknown', function () {
    expect(decideWalRetention(archive, [], []).remove).to.deep.equal([]);
    const held = decideWalRetention(archive, [{backupName: 'b', startLsn: '0/4000060', walSegmentSize: MB16}], ['c']);
    expect(held.remove).to.deep.equal([]);
    expect(held.reason).to.include('c');
  });
});
