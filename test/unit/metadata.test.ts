import {expect} from 'chai';

import {SynapseError} from '../../src/core/errors/index.js';
import {DocumentAuthenticator, parseMetadata, serializeMetadata, type BackupMetadata} from '../../src/core/metadata/index.js';
import {Secret} from '../../src/core/secrets/index.js';

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

const GLOBALS = {
  roles: [{name: 'app', superuser: false, inherit: true, createRole: false, createDb: false, canLogin: true, replication: false, bypassRls: false, connectionLimit: -1, validUntil: null}],
  memberships: [],
  settings: [{role: 'app', setting: 'search_path=app, public'}],
  passwords: 'omitted-not-readable',
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
    ['no database', JSON.stringify({...valid, database: undefined}), /database is missing or incomplete/],
    ['a database without a name', JSON.stringify({...valid, database: {...valid.database, name: ''}}), /database is missing or incomplete/],
    ['no dump', JSON.stringify({...valid, dump: undefined}), /dump is missing/],
    ['a custom-format dump', JSON.stringify({...valid, dump: {...valid.dump, format: 'custom'}}), /not a plain pg_dump/],
    ['no tool', JSON.stringify({...valid, tool: undefined}), /tool is missing/],
    ['no completedAt', JSON.stringify({...valid, completedAt: 'yesterday'}), /completedAt is missing/],
    ['a negative duration', JSON.stringify({...valid, durationMs: -1}), /durationMs is missing/],
    ['a negative size', JSON.stringify({...valid, sizes: {plaintextBytes: 1, storedBytes: -5}}), /sizes are missing/],
    ['no compression level', JSON.stringify({...valid, compression: {algorithm: 'gzip'}}), /compression level is missing/],
    ['encryption without iterations', JSON.stringify({...valid, encryption: {...valid.encryption, kdfIterations: 'many'}}), /iterations are out of range/],
    ['a huge iteration count', JSON.stringify({...valid, encryption: {...valid.encryption, kdfIterations: 1e12}}), /iterations are out of range/],
    ['an .enc name without encryption', JSON.stringify({...valid, encryption: null}), /the file name says encrypted, but the metadata says it is not/],
    ['a daily name with an hourly type', JSON.stringify({...valid, backupType: 'hourly'}), /hourly backup, which the file name contradicts/],
    ['a fingerprint with a negative count', JSON.stringify({...valid, fingerprint: {takenIn: 'dump-snapshot', tables: [{schema: 'public', name: 't', rows: -1}], sequences: []}}), /fingerprint is malformed/],
    ['a fingerprint with a sequence value that is not a number', JSON.stringify({...valid, fingerprint: {takenIn: 'dump-snapshot', tables: [], sequences: [{schema: 'public', name: 's', lastValue: '1; drop table t', isCalled: true, increment: '1'}]}}), /fingerprint is malformed/],
    ['globals with a role flag that is not a boolean', JSON.stringify({...valid, globals: {...GLOBALS, roles: [{...GLOBALS.roles[0], superuser: 'yes'}]}}), /globals are malformed/],
    ['globals with a setting without a value', JSON.stringify({...valid, globals: {...GLOBALS, settings: [{role: 'app', setting: 'search_path'}]}}), /globals are malformed/],
    ['globals that claim password hashes but hold none', JSON.stringify({...valid, globals: {...GLOBALS, passwords: 'included'}}), /globals are malformed/],
    ['a malformed MAC', JSON.stringify({...valid, authentication: {algorithm: 'hmac-sha256', kdf: 'pbkdf2-sha256', kdfIterations: 1000, mac: 'xyz'}}), /MAC is malformed/],
  ];
  it('refuses encryption metadata on a name without .enc', function () {
    const plainName = 'backup_daily_20260222_020000.sql.gz';
    expect(() => parseMetadata(plainName, JSON.stringify({...valid, backupName: plainName}))).to.throw(SynapseError, /the metadata says encrypted, but the file name says it is not/);
  });

  it('reads a fingerprint and globals', function () {
    const withBoth = {...valid, fingerprint: {takenIn: 'dump-snapshot', tables: [{schema: 'public', name: 't', rows: 3}], sequences: [{schema: 'public', name: 's', lastValue: '-9223372036854775808', isCalled: false, increment: '-1'}]}, globals: GLOBALS};
    expect(parseMetadata(name, JSON.stringify(withBoth))).to.deep.equal(withBoth);
  });

  it('refuses password hashes in an unencrypted backup', function () {
    const plainName = 'backup_daily_20260222_020000.sql.gz';
    const text = JSON.stringify({...valid, backupName: plainName, encryption: null, globals: {...GLOBALS, passwords: 'included', passwordHashes: 'c2VjcmV0'}});
    expect(() => parseMetadata(plainName, text)).to.throw(SynapseError, /password hashes but is not encrypted/);
  });

  for (const [label, text, message] of broken) {
    it(`refuses ${label}`, function () {
      expect(() => parseMetadata(name, text)).to.throw(SynapseError, message);
    });
  }
});

describe('metadata authentication', function () {
  const key = new Secret('a-passphrase-that-is-long-enough-0123456789');

  it('accepts what it signed, in any key order, and refuses any change, another key, or a MAC taken away', async function () {
    const authenticator = new DocumentAuthenticator(key, 1000);
    const signed = await authenticator.sign(valid);
    expect(await authenticator.verify(signed)).to.deep.equal({status: 'authentic'});
    // The same document with its fields in another order, as an editor or another writer may save it.
    const reordered = Object.fromEntries(Object.entries(signed).reverse());
    expect(await authenticator.verify(reordered)).to.deep.equal({status: 'authentic'});
    expect((await authenticator.verify({...signed, checksums: {...signed.checksums, stored: 'c'.repeat(64)}})).status).to.equal('forged');
    expect((await authenticator.verify({...signed, authentication: {...signed.authentication, kdfIterations: 1001}})).status).to.equal('forged');
    expect((await new DocumentAuthenticator(new Secret('another-passphrase-of-enough-length-98765'), 1000).verify(signed)).status).to.equal('forged');
    expect(await authenticator.verify(valid)).to.deep.equal({status: 'unsigned'});
  });

  it('never puts the key or anything derived from it in the clear into the document', async function () {
    const signed = await new DocumentAuthenticator(key, 1000).sign(valid);
    expect(JSON.stringify(signed)).not.to.include(key.reveal());
    expect(Object.keys(signed.authentication).sort()).to.deep.equal(['algorithm', 'kdf', 'kdfIterations', 'mac']);
  });
});
