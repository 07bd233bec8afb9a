import {expect} from 'chai';

import {STAGING_SUFFIX} from '../../src/contracts/storage.js';
import {areaOfKey, classifyKey, formatBackupName, nextFreeBackupName, parseBackupName} from '../../src/core/naming/index.js';

const at = new Date(Date.UTC(2026, 1, 22, 14, 30, 0));

describe('backup names', function () {
  const formatCases: Array<[string, Parameters<typeof formatBackupName>[0], string]> = [
    ['hourly, encrypted', {type: 'hourly', startedAt: at, sequence: 0, compression: 'gzip', encrypted: true}, 'backup_hourly_20260222_143000.sql.gz.enc'],
    ['daily, plain', {type: 'daily', startedAt: at, sequence: 0, compression: 'gzip', encrypted: false}, 'backup_daily_20260222_143000.sql.gz'],
    ['second in the same second', {type: 'monthly', startedAt: at, sequence: 1, compression: 'gzip', encrypted: true}, 'backup_monthly_20260222_143000_1.sql.gz.enc'],
    ['zstd, encrypted', {type: 'daily', startedAt: at, sequence: 0, compression: 'zstd', encrypted: true}, 'backup_daily_20260222_143000.sql.zst.enc'],
    ['zstd, plain, sequence 2', {type: 'hourly', startedAt: at, sequence: 2, compression: 'zstd', encrypted: false}, 'backup_hourly_20260222_143000_2.sql.zst'],
    ['UTC, not local time', {type: 'hourly', startedAt: new Date('2026-12-31T23:59:59.999Z'), sequence: 0, compression: 'gzip', encrypted: false}, 'backup_hourly_20261231_235959.sql.gz'],
    ['physical, zstd, encrypted', {type: 'daily', startedAt: at, sequence: 0, compression: 'zstd', encrypted: true, format: 'tar'}, 'backup_daily_20260222_143000.tar.zst.enc'],
    ['physical, gzip, sequence 1', {type: 'hourly', startedAt: at, sequence: 1, compression: 'gzip', encrypted: false, format: 'tar'}, 'backup_hourly_20260222_143000_1.tar.gz'],
  ];
  for (const [label, parts, expected] of formatCases) {
    it(`formats ${label}`, function () {
      expect(formatBackupName(parts)).to.equal(expected);
      const parsed = parseBackupName(expected)!;
      expect(parsed.type).to.equal(parts.type);
      expect(parsed.sequence).to.equal(parts.sequence);
      expect(parsed.encrypted).to.equal(parts.encrypted);
      expect(parsed.compression).to.equal(parts.compression);
      expect(parsed.format).to.equal(parts.format ?? 'sql');
      expect(parsed.startedAt.getTime()).to.equal(Math.floor(parts.startedAt.getTime() / 1000) * 1000);
    });
  }

  const rejected = [
    '../backup_hourly_20260222_143000.sql.gz',
    '/var/backups/backup_hourly_20260222_143000.sql.gz',
    'backup_weekly_20260222_143000.sql.gz',
    'backup_hourly_20260222_143000.sql.xz',
    'backup_hourly_20260222_143000.sql.zstd',
    'backup_hourly_20260230_143000.sql.gz',
    'backup_hourly_20260222_250000.sql.gz',
    'backup_hourly_20260222_143000.sql',
    'backup_hourly_20260222_143000.tar',
    'backup_hourly_20260222_143000.tgz',
    'backup_hourly_20260222_143000.zip.gz',
    'backup_hourly_20260222_143000.sql.gz.enc.meta.json',
    'backup_hourly_20260222_143000.sql.gz.tmp',
    '',
  ];
  for (const name of rejected) {
    it(`rejects '${name}'`, function () {
      expect(parseBackupName(name)).to.equal(undefined);
    });
  }

  const classified: Array<[string, string]> = [
    ['backup_hourly_20260222_143000.sql.gz.enc', 'backup'],
    ['backup_hourly_20260222_143000.sql.gz.enc.meta.json', 'metadata'],
    [`backup_hourly_20260222_143000.sql.gz.enc.a1b2c3d4e5f6${STAGING_SUFFIX}`, 'staging'],
    [`backup_hourly_20260222_143000.sql.gz.enc.meta.json.a1b2c3d4e5f6${STAGING_SUFFIX}`, 'staging'],
    [`synapse-backup.lock.a1b2c3d4${STAGING_SUFFIX}`, 'staging'],
    ['backup_hourly_20260222_143000.sql.gz.enc.verified.json', 'verification'],
    ['backup_hourly_20260222_143000.sql.gz.enc.pending', 'pending'],
    [`backup_hourly_20260222_143000.sql.gz.enc.pending.a1b2c3d4e5f6${STAGING_SUFFIX}`, 'staging'],
    // A staging name must carry the random token a put() gives it; without one, it is not ours.
    [`backup_hourly_20260222_143000.sql.gz.enc${STAGING_SUFFIX}`, 'foreign'],
    [`backup_hourly_20260222_143000.sql.gz.enc.x${STAGING_SUFFIX}`, 'foreign'],
    [`synapse-backup.lock.a1b2${STAGING_SUFFIX}`, 'foreign'],
    ['other.verified.json', 'foreign'],
    ['other.pending', 'foreign'],
    ['synapse-backup.lock', 'lock'],
    ['notes.txt', 'foreign'],
    [`someone-elses-file.1234${STAGING_SUFFIX}`, 'foreign'],
    ['backup_hourly_20260222_143000.sql.gz.bak', 'foreign'],
    ['other.meta.json', 'foreign'],
    ['synapse-backup-check.0123456789ab.probe', 'probe'],
    ['synapse-backup-check.0123456789.probe', 'foreign'],
    ['synapse-backup-check.0123456789ab.probe.txt', 'foreign'],
    // A backup's name in an area (the WAL archive's, or one of someone else's) is never a backup of ours.
    ['wal/backup_hourly_20260222_143000.sql.gz.enc', 'foreign'],
    ['wal/backup_hourly_20260222_143000.sql.gz.enc.meta.json', 'foreign'],
    ['elsewhere/synapse-backup.lock', 'foreign'],
  ];
  for (const [key, kind] of classified) {
    it(`classifies '${key}' as ${kind}`, function () {
      expect(classifyKey(key).kind).to.equal(kind);
    });
  }

  const areas: Array<[string, ReturnType<typeof areaOfKey>]> = [
    ['backup_hourly_20260222_143000.sql.gz.enc', 'backups'],
    ['synapse-backup.lock', 'backups'],
    ['wal/000000010000000000000001', 'wal'],
    ['wal/', 'wal'],
    ['wal/history/00000002.history', 'foreign'],
    ['elsewhere/backup_hourly_20260222_143000.sql.gz.enc', 'foreign'],
  ];
  for (const [key, area] of areas) {
    it(`puts '${key}' in the ${area} area`, function () {
      expect(areaOfKey(key)).to.equal(area);
    });
  }

  it('picks the next free name when a backup of that second exists', function () {
    const base = {type: 'hourly' as const, startedAt: at, compression: 'gzip' as const, encrypted: false};
    expect(nextFreeBackupName(base, new Set())).to.equal('backup_hourly_20260222_143000.sql.gz');
    expect(nextFreeBackupName(base, new Set(['backup_hourly_20260222_143000.sql.gz']))).to.equal('backup_hourly_20260222_143000_1.sql.gz');
    expect(nextFreeBackupName(base, new Set(['backup_hourly_20260222_143000.sql.gz.meta.json', 'backup_hourly_20260222_143000_1.sql.gz']))).to.equal(
      'backup_hourly_20260222_143000_2.sql.gz',
    );
    // A killed run's marker holds its name until cleanup has removed what it left.
    expect(nextFreeBackupName(base, new Set(['backup_hourly_20260222_143000.sql.gz.pending']))).to.equal('backup_hourly_20260222_143000_1.sql.gz');
  });
});
