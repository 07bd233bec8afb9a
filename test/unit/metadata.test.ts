import {expect} from 'chai';

import {SynapseError} from '../../src/core/errors/index.js';
import {parseMetadata, serializeMetadata, type BackupMetadata} from '../../src/core/metadata/index.js';

const name = 'backup_daily_20260222_020000.sql.gz.enc';
const valid: BackupMetadata = {
  formatVersion: 1,
  backupName: name,
  backupType: 'daily',
  createdAt: '2026-02-22T02:00:00.000Z',
  completedAt: '2026-02-22T02:00:05.000Z',
  durationMs: 5000,
  database: {name: 'app', serverVersion: '15.20', serverVersionNum: 150020},
  dump: {tool: 'pg_dump', version: '15.20', format: 'plain'},
  sizes: {plaintextBytes: 100, storedBytes: 64},
  checksums: {algorithm: 'sha256', stored: 'a'.repeat(64), plaintext: 'b'.repeat(64)},
  compression: {algorithm: 'gzip', level: 6},
  encryption: {provider: 'aes-256-cbc', cipher: 'aes-256-cbc', kdf: 'pbkdf2', kdfDigest: 'sha256', kdfIterations: 600000, container: 'openssl-salted'},
  tool: {name: 'synapse-backup', version: '0.1.0'},
};

describe('backup metadata', function () {
  it('round-trips', function () {
    expect(parseMetadata(name, serializeMetadata(valid))).to.deep.equal(valid);
  });

  it('reads a zstd backup', function () {
    const zstdName = 'backup_daily_20260222_020000.sql.zst.enc';
    const zstd = {...valid, backupName: zstdName, compression: {algorithm: 'zstd' as const, level: 3}};
    expect(parseMetadata(zstdName, serializeMetadata(zstd)).compression).to.deep.equal({algorithm: 'zstd', level: 3});
  });

  const broken: Array<[string, string, RegExp]> = [
    ['truncated JSON', serializeMetadata(valid).slice(0, 40), /not valid JSON/],
    ['another backup', JSON.stringify({...valid, backupName: 'backup_daily_20260101_000000.sql.gz'}), /describes/],
    ['a future format', JSON.stringify({...valid, formatVersion: 2}), /format version 2/],
    ['no checksum', JSON.stringify({...valid, checksums: {algorithm: 'sha256'}}), /checksums/],
    ['no sizes', JSON.stringify({...valid, sizes: undefined}), /sizes/],
    ['an unknown compression', JSON.stringify({...valid, compression: {algorithm: 'lz4', level: 1}}), /compression is missing or unknown/],
    ['zstd in a .gz file', JSON.stringify({...valid, compression: {algorithm: 'zstd', level: 3}}), /file name contradicts/],
  ];
  for (const [label, text, message] of broken) {
    it(`refuses ${label}`, function () {
      expect(() => parseMetadata(name, text)).to.throw(SynapseError, message);
    });
  }
});
