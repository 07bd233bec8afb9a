import {expect} from 'chai';

import {formatBackupTable, formatBytes, formatDuration, formatRate} from '../../src/cli/format/index.js';
import {parseClientToolVersion} from '../../src/core/postgres/client-tools.js';
import type {ListedBackup} from '../../src/core/services/index.js';

describe('formatting', function () {
  const sizes: Array<[number, string]> = [
    [0, '0 B'],
    [999, '999 B'],
    [1000, '1.00 KB'],
    [2_450_000, '2.45 MB'],
    [3_100_000_000, '3.10 GB'],
  ];
  for (const [bytes, text] of sizes) {
    it(`formats ${bytes} bytes as '${text}'`, function () {
      expect(formatBytes(bytes)).to.equal(text);
    });
  }

  const durations: Array<[number, string]> = [
    [0, '0.0 s'],
    [4_240, '4.2 s'],
    [59_940, '59.9 s'],
    [59_950, '1 min 0 s'],
    [119_700, '2 min 0 s'],
    [185_000, '3 min 5 s'],
    [3_599_400, '59 min 59 s'],
    [3_599_600, '1 h 0 min 0 s'],
    [86_400_000, '24 h 0 min 0 s'],
    [90_061_000, '25 h 1 min 1 s'],
  ];
  for (const [milliseconds, text] of durations) {
    it(`formats ${milliseconds} ms as '${text}'`, function () {
      expect(formatDuration(milliseconds)).to.equal(text);
    });
  }

  it('rounds a rate under 1 KB/s to whole bytes', function () {
    expect(formatRate(416, 2055)).to.equal('202 B/s');
    expect(formatRate(4160, 2055)).to.equal('2.02 KB/s');
  });

  it('prints the backup table of the product description', function () {
    const backup: ListedBackup = {
      method: 'logical',
      wal: null,
      name: 'backup_hourly_20260222_143000.sql.gz.enc',
      type: 'hourly',
      createdAt: '2026-02-22T14:30:00.000Z',
      size: 2_450_000,
      compression: 'gzip',
      encrypted: true,
      health: 'good',
      problem: undefined,
      database: 'app',
      sha256: 'x',
      verifiedAt: undefined,
    };
    const broken: ListedBackup = {
      ...backup,
      name: 'backup_daily_20260221_020000.sql.gz.enc',
      type: 'daily',
      createdAt: '2026-02-21T02:00:00.000Z',
      health: 'metadata-missing',
      problem: 'metadata missing',
      size: 10,
      database: undefined,
    };
    // For one database, exactly the product's promise: no Database column.
    expect(formatBackupTable([backup, broken])).to.equal(
      [
        'Available backups:',
        'Filename                                 Type       Timestamp                  Size',
        '-'.repeat(83),
        'backup_hourly_20260222_143000.sql.gz.enc Hourly     2026-02-22 14:30:00     2.45 MB',
        'backup_daily_20260221_020000.sql.gz.enc  Daily      2026-02-21 02:00:00        10 B  [metadata missing]',
        '',
      ].join('\n'),
    );
    expect(formatBackupTable([backup, broken], 'Available backups:', {showDatabase: true})).to.equal(
      [
        'Available backups:',
        'Filename                                 Database Type       Timestamp                  Size',
        '-'.repeat(92),
        'backup_hourly_20260222_143000.sql.gz.enc app      Hourly     2026-02-22 14:30:00     2.45 MB',
        'backup_daily_20260221_020000.sql.gz.enc  ?        Daily      2026-02-21 02:00:00        10 B  [metadata missing]',
        '',
      ].join('\n'),
    );
  });

  const versions: Array<[string, {version: string; major: number} | undefined]> = [
    ['pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)', {version: '15.20', major: 15}],
    ['psql (PostgreSQL) 17.2', {version: '17.2', major: 17}],
    ['pg_dump (PostgreSQL) 18beta1', {version: '18beta1', major: 18}],
    ['something else', undefined],
  ];
  for (const [output, expected] of versions) {
    it(`reads the client version from '${output}'`, function () {
      expect(parseClientToolVersion(output)).to.deep.equal(expected);
    });
  }
});
