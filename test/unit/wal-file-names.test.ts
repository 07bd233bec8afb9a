import {expect} from 'chai';

import {parseWalFileName, parseWalObjectKey, walLookupPrefix, walObjectKey} from '../../src/core/wal/index.js';

describe('WAL file names', function () {
  const cases: Array<[string, ReturnType<typeof parseWalFileName>]> = [
    ['000000010000000000000001', {name: '000000010000000000000001', kind: 'segment', timeline: 1, segment: '0000000000000001'}],
    ['0000000A00000003000000FF', {name: '0000000A00000003000000FF', kind: 'segment', timeline: 10, segment: '00000003000000FF'}],
    ['00000002.history', {name: '00000002.history', kind: 'history', timeline: 2}],
    ['000000010000000000000005.partial', {name: '000000010000000000000005.partial', kind: 'partial', timeline: 1, segment: '0000000000000005'}],
    ['000000010000000000000002.00000028.backup', {name: '000000010000000000000002.00000028.backup', kind: 'backup', timeline: 1, segment: '0000000000000002'}],
    // What PostgreSQL never archives, or what would escape the archive's area.
    ['000000000000000000000001', undefined],
    ['00000000.history', undefined],
    ['00000001000000000000001', undefined],
    ['0000000100000000000000010', undefined],
    ['000000010000000000000001.ready', undefined],
    ['0000000a0000000000000001', undefined],
    ['RECOVERYXLOG', undefined],
    ['../000000010000000000000001', undefined],
    ['00000001.history.partial', undefined],
    ['', undefined],
  ];
  for (const [name, expected] of cases) {
    it(`reads '${name}' as ${expected ? expected.kind : 'no WAL file'}`, function () {
      expect(parseWalFileName(name)).to.deep.equal(expected);
    });
  }

  it('names an archived copy by file, tag (of either format), compression and cipher, and reads the name back', function () {
    const hex = 'ab'.repeat(32);
    const key = walObjectKey('000000010000000000000005.partial', {format: 1, hex}, 'zstd', true);
    expect(key).to.equal(`wal/000000010000000000000005.partial-${hex}.zst.enc`);
    expect(parseWalObjectKey(key)).to.deep.include({tag: {format: 1, hex}, compression: 'zstd', encrypted: true});
    expect(parseWalObjectKey(key)!.file.kind).to.equal('partial');
    expect(parseWalObjectKey(walObjectKey('00000002.history', {format: 1, hex}, 'gzip', false))).to.deep.include({compression: 'gzip', encrypted: false});
    const second = walObjectKey('000000010000000000000005', {format: 2, hex}, 'zstd', true);
    expect(second).to.equal(`wal/000000010000000000000005-v2-${hex}.zst.enc`);
    expect(parseWalObjectKey(second)).to.deep.include({tag: {format: 2, hex}, compression: 'zstd', encrypted: true});
    expect(parseWalObjectKey(second)!.file.name).to.equal('000000010000000000000005');
  });

  it('lists the copies of one file under a prefix no other file shares', function () {
    const tag = {format: 2, hex: 'cd'.repeat(32)} as const;
    const prefix = walLookupPrefix('000000010000000000000005');
    expect(walObjectKey('000000010000000000000005', tag, 'gzip', true).startsWith(prefix)).to.equal(true);
    for (const other of ['000000010000000000000005.partial', '000000010000000000000005.00000028.backup', '0000000100000000000000050']) {
      expect(walObjectKey(other, tag, 'gzip', true).startsWith(prefix), other).to.equal(false);
    }
  });

  for (const key of ['wal/000000010000000000000001-' + 'ab'.repeat(32) + '.gz.enc.123456.partial', 'wal/000000010000000000000001-' + 'AB'.repeat(32) + '.gz', 'wal/archive.json', 'backup_daily_20260101_000000.sql.gz', 'wal/RECOVERYXLOG-' + 'ab'.repeat(32) + '.gz', 'wal/000000010000000000000001-' + 'ab'.repeat(31) + '.gz', 'wal/000000010000000000000001-v3-' + 'ab'.repeat(32) + '.gz', 'wal/000000010000000000000001-v2' + 'ab'.repeat(32) + '.gz']) {
    it(`takes '${key}' for no archived copy`, function () {
      expect(parseWalObjectKey(key)).to.equal(undefined);
    });
  }
});
