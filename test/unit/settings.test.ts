import {expect} from 'chai';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';

import {resolveSettings, type Env} from '../../src/core/config/index.js';
import {SynapseError} from '../../src/core/errors/index.js';

const longKey = 'k'.repeat(40);

function settingsOf(processEnv: Env, dotenv: Env = {}, cwd = '/srv/app') {
  return resolveSettings({process: processEnv, dotenv, cwd});
}

function configError(processEnv: Env, dotenv: Env = {}): SynapseError {
  try {
    settingsOf(processEnv, dotenv);
  } catch (error) {
    expect(error).to.be.instanceOf(SynapseError);
    expect((error as SynapseError).code).to.equal('E_CONFIG');
    return error as SynapseError;
  }
  throw new Error('expected a configuration error');
}

describe('resolveSettings', function () {
  it('uses the defaults: ./backups, gzip 6, retention 24/30/12, no key (with a warning)', function () {
    const settings = settingsOf({});
    expect(settings.storage).to.deep.equal({scheme: 'local', location: '/srv/app/backups'});
    expect(settings.compression).to.deep.equal({algorithm: 'gzip', level: 6});
    expect(settings.retention).to.deep.equal({hourly: 24, daily: 30, monthly: 12});
    expect(settings.encryption).to.equal(undefined);
    expect(settings.warnings.join('\n')).to.match(/UNENCRYPTED/);
  });

  it('reads retention counts and BACKUP_DIR', function () {
    const settings = settingsOf({BACKUP_RETENTION_HOURLY: '48', BACKUP_RETENTION_DAILY: '0', BACKUP_RETENTION_MONTHLY: '6', BACKUP_DIR: '/var/backups/pg', BACKUP_ENCRYPTION_KEY: longKey});
    expect(settings.retention).to.deep.equal({hourly: 48, daily: 0, monthly: 6});
    expect(settings.storage.location).to.equal('/var/backups/pg');
    expect(settings.warnings).to.deep.equal([]);
  });

  const compressions: Array<[Env, {algorithm: string; level: number}]> = [
    [{BACKUP_COMPRESSION: 'zstd'}, {algorithm: 'zstd', level: 3}],
    [{BACKUP_COMPRESSION: ' ZSTD '}, {algorithm: 'zstd', level: 3}],
    [{BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: '19'}, {algorithm: 'zstd', level: 19}],
    [{BACKUP_COMPRESSION: 'gzip', BACKUP_COMPRESSION_LEVEL: '1'}, {algorithm: 'gzip', level: 1}],
    [{BACKUP_COMPRESSION_LEVEL: '9'}, {algorithm: 'gzip', level: 9}],
  ];
  for (const [env, expected] of compressions) {
    it(`reads compression ${JSON.stringify(env)}`, function () {
      expect(settingsOf({...env, BACKUP_ENCRYPTION_KEY: longKey}).compression).to.deep.equal(expected);
    });
  }

  const invalid: Array<[string, Env, RegExp]> = [
    ['a negative retention count', {BACKUP_RETENTION_HOURLY: '-1'}, /BACKUP_RETENTION_HOURLY '-1'/],
    ['a retention count that is not a number', {BACKUP_RETENTION_DAILY: 'many'}, /BACKUP_RETENTION_DAILY 'many'/],
    ['zero PBKDF2 iterations', {BACKUP_ENCRYPTION_KEY: longKey, BACKUP_ENCRYPTION_ITERATIONS: '0'}, /BACKUP_ENCRYPTION_ITERATIONS '0'/],
    ['a gzip level of 12', {BACKUP_COMPRESSION_LEVEL: '12'}, /BACKUP_COMPRESSION_LEVEL/],
    ['an unknown compression', {BACKUP_COMPRESSION: 'lzma'}, /BACKUP_COMPRESSION 'lzma'.*gzip and zstd/],
    ['a gzip level of 0', {BACKUP_COMPRESSION_LEVEL: '0'}, /gzip levels run from 1 to 9/],
    ['a zstd level of 20', {BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: '20'}, /zstd levels run from 1 to 19/],
    ['a level that is not a number', {BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: 'fast'}, /BACKUP_COMPRESSION_LEVEL 'fast'/],
    ['both a key and a key file', {BACKUP_ENCRYPTION_KEY: longKey, BACKUP_ENCRYPTION_KEY_FILE: '/k'}, /both BACKUP_ENCRYPTION_KEY and BACKUP_ENCRYPTION_KEY_FILE/],
    ['a key variable that is set but empty', {BACKUP_ENCRYPTION_KEY: ''}, /BACKUP_ENCRYPTION_KEY: it is set but empty/],
    ['a key variable of blanks', {BACKUP_ENCRYPTION_KEY: '  '}, /BACKUP_ENCRYPTION_KEY: it is set but empty/],
    ['a key file variable that is set but empty', {BACKUP_ENCRYPTION_KEY_FILE: ''}, /BACKUP_ENCRYPTION_KEY_FILE: it is set but empty/],
    ['a key file that does not exist', {BACKUP_ENCRYPTION_KEY_FILE: '/nonexistent/key'}, /BACKUP_ENCRYPTION_KEY_FILE '\/nonexistent\/key'/],
  ];
  for (const [label, env, message] of invalid) {
    it(`refuses ${label}`, function () {
      expect(configError(env).message).to.match(message);
    });
  }

  it('warns about a short key, and never shows the key', function () {
    const settings = settingsOf({BACKUP_ENCRYPTION_KEY: 'short-secret'});
    expect(settings.warnings.join('\n')).to.match(/shorter than 32 characters/);
    expect(JSON.stringify(settings)).not.to.include('short-secret');
    expect(String(settings.encryption?.key)).to.equal('[redacted]');
    expect(settings.encryption?.key.reveal()).to.equal('short-secret');
  });

  it('warns when the key comes from .env, and the process environment wins over .env', function () {
    const fromDotenv = settingsOf({}, {BACKUP_ENCRYPTION_KEY: longKey});
    expect(fromDotenv.warnings.join('\n')).to.match(/comes from a \.env file/);
    const overridden = settingsOf({BACKUP_ENCRYPTION_KEY: `${longKey}-process`, BACKUP_DIR: '/a'}, {BACKUP_ENCRYPTION_KEY: longKey, BACKUP_DIR: '/b'});
    expect(overridden.encryption?.key.reveal()).to.equal(`${longKey}-process`);
    expect(overridden.storage.location).to.equal('/a');
    expect(overridden.warnings).to.deep.equal([]);
  });

  it('reads the key from a file, without its trailing newline, and warns when others can read it', async function () {
    const directory = await mkdtemp(path.join(tmpdir(), 'synapse-key-'));
    try {
      const file = path.join(directory, 'key');
      await writeFile(file, `${longKey}\n`, {mode: 0o644});
      const settings = settingsOf({BACKUP_ENCRYPTION_KEY_FILE: file});
      expect(settings.encryption?.key.reveal()).to.equal(longKey);
      expect(settings.warnings.join('\n')).to.match(/readable by other users/);
      await writeFile(path.join(directory, 'empty'), '');
      expect(configError({BACKUP_ENCRYPTION_KEY_FILE: path.join(directory, 'empty')}).message).to.match(/first line is empty/);
      // Only the first line, as `openssl enc -pass file:` reads it; an empty first line is an error.
      await writeFile(file, `${longKey}\nsecond line\n`);
      expect(settingsOf({BACKUP_ENCRYPTION_KEY_FILE: file}).encryption?.key.reveal()).to.equal(longKey);
      await writeFile(file, `\n${longKey}\n`);
      expect(configError({BACKUP_ENCRYPTION_KEY_FILE: file}).message).to.match(/first line is empty/);
      await writeFile(file, `${longKey}\r\n`);
      expect(configError({BACKUP_ENCRYPTION_KEY_FILE: file}).message).to.match(/carriage return/);
    } finally {
      await rm(directory, {recursive: true, force: true});
    }
  });

  describe('settings a command does not use', function () {
    const bad = {BACKUP_COMPRESSION: 'bogus', BACKUP_COMPRESSION_LEVEL: '99', BACKUP_RETENTION_DAILY: 'abc', BACKUP_ENCRYPTION_ITERATIONS: 'many', BACKUP_ENCRYPTION_KEY: longKey};

    it('are warnings with their defaults, so that nothing unrelated stops a restore', function () {
      const settings = resolveSettings({process: bad, dotenv: {}, cwd: '/srv'}, {uses: []});
      expect(settings.compression).to.deep.equal({algorithm: 'gzip', level: 6});
      expect(settings.retention).to.deep.equal({hourly: 24, daily: 30, monthly: 12});
      expect(settings.encryption?.iterations).to.equal(600000);
      const warnings = settings.warnings.join('\n');
      for (const name of ['BACKUP_COMPRESSION', 'BACKUP_RETENTION_DAILY', 'BACKUP_ENCRYPTION_ITERATIONS']) expect(warnings).to.include(name);
      expect(warnings).to.include('This command does not use it and goes on');
    });

    it('are errors for the commands that use them', function () {
      expect(() => resolveSettings({process: bad, dotenv: {}, cwd: '/srv'}, {uses: ['new-backups']})).to.throw(SynapseError, /BACKUP_ENCRYPTION_ITERATIONS|BACKUP_COMPRESSION/);
      expect(() => resolveSettings({process: {BACKUP_RETENTION_DAILY: 'abc'}, dotenv: {}, cwd: '/srv'}, {uses: ['retention']})).to.throw(SynapseError, /BACKUP_RETENTION_DAILY 'abc'/);
    });

    it('warn about an unencrypted backup only where backups are written', function () {
      expect(resolveSettings({process: {}, dotenv: {}, cwd: '/srv'}, {uses: []}).warnings).to.deep.equal([]);
      expect(resolveSettings({process: {}, dotenv: {}, cwd: '/srv'}, {uses: ['new-backups']}).warnings.join()).to.match(/UNENCRYPTED/);
    });
  });

  it('reads WAL_ARCHIVE_ACKNOWLEDGE: all by default, primary on request, anything else refused by wal push and a warning elsewhere', function () {
    const wal = (env: Env) => resolveSettings({process: env, dotenv: {}, cwd: '/srv'}, {uses: ['wal-archive']}).walArchive.acknowledge;
    expect(wal({})).to.equal('all');
    expect(wal({WAL_ARCHIVE_ACKNOWLEDGE: 'primary'})).to.equal('primary');
    expect(wal({WAL_ARCHIVE_ACKNOWLEDGE: ' all '})).to.equal('all');
    expect(() => wal({WAL_ARCHIVE_ACKNOWLEDGE: 'first'})).to.throw(SynapseError, /WAL_ARCHIVE_ACKNOWLEDGE 'first': it is all or primary/);
    const elsewhere = resolveSettings({process: {WAL_ARCHIVE_ACKNOWLEDGE: 'first'}, dotenv: {}, cwd: '/srv'}, {uses: []});
    expect(elsewhere.walArchive.acknowledge).to.equal('all');
    expect(elsewhere.warnings.join('\n')).to.include('WAL_ARCHIVE_ACKNOWLEDGE');
  });

  it('reads BACKUP_DRILL_TIMEOUT as a duration, 24 hours by default; a bad one is refused where backups are written and a warning elsewhere', function () {
    const physical = (env: Env, uses: Parameters<typeof resolveSettings>[1] = {uses: ['new-backups']}) => resolveSettings({process: {...env, BACKUP_ENCRYPTION_KEY: longKey}, dotenv: {}, cwd: '/srv'}, uses);
    expect(physical({}).physical.drillTimeoutMs).to.equal(24 * 3_600_000);
    expect(physical({BACKUP_DRILL_TIMEOUT: '90m'}).physical.drillTimeoutMs).to.equal(90 * 60_000);
    expect(physical({BACKUP_DRILL_TIMEOUT: '3600'}).physical.drillTimeoutMs).to.equal(3_600_000);
    for (const value of ['soon', '0', '-5m']) expect(() => physical({BACKUP_DRILL_TIMEOUT: value})).to.throw(SynapseError, new RegExp(`BACKUP_DRILL_TIMEOUT '${value}'`));
    const elsewhere = physical({BACKUP_DRILL_TIMEOUT: 'soon'}, {uses: []});
    expect(elsewhere.physical.drillTimeoutMs).to.equal(24 * 3_600_000);
    expect(elsewhere.warnings.join('\n')).to.include("BACKUP_DRILL_TIMEOUT 'soon'");
  });

  it('checks the progress interval and the storage timeout: a bad one is a warning and the default, never 230 lines a second', function () {
    expect(settingsOf({SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS: '2500'}).progressIntervalMs).to.equal(2500);
    const bad = settingsOf({SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS: 'abc'});
    expect(bad.progressIntervalMs).to.equal(10000);
    expect(bad.warnings.join('\n')).to.include("SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS 'abc'");
    // Every command uses these: the warning must not say otherwise.
    expect(bad.warnings.join('\n')).to.include('using the default (10000 ms) instead').and.not.include('does not use it');
    expect(settingsOf({}).storageTimeoutMs).to.equal(300_000);
    expect(settingsOf({SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS: '1500'}).storageTimeoutMs).to.equal(1500);
    for (const value of ['abc', '0']) {
      const badTimeout = settingsOf({SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS: value});
      expect(badTimeout.storageTimeoutMs).to.equal(300_000);
      expect(badTimeout.warnings.join('\n')).to.include(`SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS '${value}'`);
    }
  });
});
