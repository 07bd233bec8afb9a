import {expect} from 'chai';
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';

import {portableSettings, serverCommand, shellWord} from '../../src/core/config/portable-settings.js';
import {resolveSettings} from '../../src/core/config/settings.js';
import {isSynapseError} from '../../src/core/errors/index.js';
import type {RecordedWalRange} from '../../src/core/metadata/index.js';
import {endsLikeCompleteTar, TarCompletionObserver} from '../../src/core/pipeline/tar-completion.js';
import {applyRetentionPolicy} from '../../src/core/retention/index.js';
import {assertTargetReachable, parseTargetLsn, parseTargetName, parseTargetTime, recoveryTargetSettings} from '../../src/core/services/restore/recovery-target.js';
import {manifestWalRanges} from '../../src/core/services/physical-backup.js';
import {parseLsn} from '../../src/core/wal/wal-positions.js';

const MB16 = 16 * 1024 * 1024;

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return isSynapseError(error) ? error.code : 'not a SynapseError';
  }
  return undefined;
}

describe('recovery targets', function () {
  const times: Array<[string, string, string]> = [
    ['2026-12-02 14:30:00', '2026-12-02T14:30:00.000Z', '2026-12-02 14:30:00+00'],
    ['2026-12-02 14:30:00+00', '2026-12-02T14:30:00.000Z', '2026-12-02 14:30:00+00'],
    ['2026-12-02T14:30:00Z', '2026-12-02T14:30:00.000Z', '2026-12-02 14:30:00+00'],
    ['2026-12-02 16:30:00+02:00', '2026-12-02T14:30:00.000Z', '2026-12-02 16:30:00+02:00'],
    ['2026-12-02 09:00:00-0530', '2026-12-02T14:30:00.000Z', '2026-12-02 09:00:00-0530'],
    ['2026-12-02 14:30:00.123456+00', '2026-12-02T14:30:00.123Z', '2026-12-02 14:30:00.123456+00'],
  ];
  for (const [text, instant, written] of times) {
    it(`reads --target-time '${text}' as ${instant}, written with its zone`, function () {
      const target = parseTargetTime(text);
      expect(target.at.toISOString()).to.equal(instant);
      expect(target.text).to.equal(written);
      expect(recoveryTargetSettings(target)).to.deep.equal([`recovery_target_time = '${written}'`]);
    });
  }
  for (const bad of ['yesterday', '2026-02-30 10:00:00', '2026-12-02 24:00:00', '2026-12-02', "2026-12-02 14:30:00'; drop"]) {
    it(`refuses --target-time '${bad}'`, function () {
      expect(codeOf(() => parseTargetTime(bad))).to.equal('E_RECOVERY_TARGET');
    });
  }

  it('reads LSNs and restore point names, quoting them for postgresql.conf', function () {
    expect(recoveryTargetSettings(parseTargetLsn('0/3000060'))).to.deep.equal(["recovery_target_lsn = '0/3000060'"]);
    expect(recoveryTargetSettings(parseTargetName("before it's gone"))).to.deep.equal(["recovery_target_name = 'before it''s gone'"]);
    expect(codeOf(() => parseTargetLsn('3000060'))).to.equal('E_RECOVERY_TARGET');
    expect(codeOf(() => parseTargetName('two\nlines'))).to.equal('E_RECOVERY_TARGET');
    expect(codeOf(() => parseTargetName('x'.repeat(64)))).to.equal('E_RECOVERY_TARGET');
    expect(recoveryTargetSettings({kind: 'latest'})).to.deep.equal([]);
  });

  describe('against the backup and the archive', function () {
    const range: RecordedWalRange = {
      systemIdentifier: '1',
      timeline: 1,
      startLsn: '0/3000028',
      stopLsn: '0/3000100',
      startWalFile: '000000010000000000000003',
      stopWalFile: '000000010000000000000003',
      walSegmentSize: MB16,
      stoppedAt: '2026-12-02T12:00:00.000Z',
    };
    const reach = (lastSegment: bigint | undefined, missing: string[] = []) => ({
      path: [{timeline: 1, first: 3n, last: undefined}],
      contiguousTo: lastSegment === undefined ? undefined : {file: `0000000100000000000000${lastSegment.toString(16).toUpperCase().padStart(2, '0')}`, modifiedAt: new Date('2026-12-02T13:00:00Z'), timeline: 1, end: (lastSegment + 1n) * BigInt(MB16)},
      missing,
      newest: undefined,
    });
    const cases: Array<[string, Parameters<typeof assertTargetReachable>[2], Parameters<typeof assertTargetReachable>[3], string | undefined]> = [
      ['a time between the backup and the archive end', reach(5n), parseTargetTime('2026-12-02 12:30:00+00'), undefined],
      ['a time before the backup ended', reach(5n), parseTargetTime('2026-12-02 11:59:59+00'), 'E_RECOVERY_TARGET'],
      ['a time after the newest archived segment', reach(5n), parseTargetTime('2026-12-02 13:00:01+00'), 'E_RECOVERY_TARGET'],
      ['an LSN before the backup ended', reach(5n), parseTargetLsn('0/3000000'), 'E_RECOVERY_TARGET'],
      ['an LSN at the backup end', reach(5n), parseTargetLsn('0/3000100'), undefined],
      ['an LSN past the archived WAL', reach(5n), {kind: 'lsn', position: parseLsn('0/6000001')!, text: '0/6000001'}, 'E_RECOVERY_TARGET'],
      ['the latest, with the stop segment archived', reach(3n), {kind: 'latest'}, undefined],
      ['the latest, without the stop segment', reach(undefined, ['000000010000000000000003']), {kind: 'latest'}, 'E_WAL_NOT_FOUND'],
      ['a name, without the stop segment', reach(undefined), parseTargetName('x'), 'E_WAL_NOT_FOUND'],
    ];
    for (const [label, archived, target, expected] of cases) {
      it(`${expected ? 'refuses' : 'accepts'} ${label}`, function () {
        expect(codeOf(() => assertTargetReachable('b', range, archived, target))).to.equal(expected);
      });
    }
  });
});

describe('a base backup\'s manifest and tar end', function () {
  it('reads the WAL ranges of a backup_manifest', function () {
    const tail = '"Files": [],\n"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/7000028", "End-LSN": "0/7000100" }\n],\n"Manifest-Checksum": "ab"}\n';
    expect(manifestWalRanges(tail)).to.deep.equal([{timeline: 1, start: '0/7000028', end: '0/7000100'}]);
    expect(manifestWalRanges('{"Files": []}')).to.deep.equal([]);
  });

  function header(name: string, size: number): Buffer {
    const block = Buffer.alloc(512);
    block.write(name, 0, 'utf8');
    block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
    block.write('0', 156, 'latin1');
    block.write('ustar\0', 257, 'latin1');
    return block;
  }
  const padded = (content: Buffer): Buffer => Buffer.concat([content, Buffer.alloc((512 - (content.length % 512)) % 512)]);

  it('keeps the named member and sees the end-of-archive marker, across any chunking', async function () {
    const manifest = Buffer.from('{"WAL-Ranges": [{ "Timeline": 2, "Start-LSN": "0/1", "End-LSN": "0/2" }]}');
    const archive = Buffer.concat([header('PG_VERSION', 3), padded(Buffer.from('15\n')), header('backup_manifest', manifest.length), padded(manifest), Buffer.alloc(1024)]);
    for (const size of [1, 7, 512, 1000, archive.length]) {
      const observer = new TarCompletionObserver({keep: ['backup_manifest']});
      const done = new Promise((resolve) => observer.on('finish', resolve));
      observer.resume();
      for (let offset = 0; offset < archive.length; offset += size) observer.write(archive.subarray(offset, offset + size));
      observer.end();
      await done;
      expect(observer.complete, `chunks of ${size}`).to.equal(true);
      expect(observer.member('backup_manifest')?.toString(), `chunks of ${size}`).to.equal(manifest.toString());
      expect(observer.member('PG_VERSION')).to.equal(undefined);
    }
    expect(endsLikeCompleteTar(archive.length - 512, archive.subarray(0, -512))).to.equal(false);
    expect(endsLikeCompleteTar(archive.length - 1, archive.subarray(0, -1))).to.equal(false);
  });
});

describe('retention with physical backups', function () {
  it('counts each method against its own quota', function () {
    const at = (hour: number): Date => new Date(Date.UTC(2026, 11, 2, hour));
    const candidate = (name: string, hour: number, method: 'logical' | 'physical') => ({name, type: 'daily' as const, database: 'app', startedAt: at(hour), sequence: 0, health: 'good' as const, verified: true, method});
    const decisions = applyRetentionPolicy(
      [candidate('l1', 1, 'logical'), candidate('p1', 2, 'physical'), candidate('l2', 3, 'logical'), candidate('p2', 4, 'physical')],
      {hourly: 1, daily: 1, monthly: 1},
      {database: 'app'},
    );
    expect(Object.fromEntries(decisions.map((decision) => [decision.name, decision.action]))).to.deep.equal({l2: 'keep', l1: 'remove', p2: 'keep', p1: 'remove'});
    expect(decisions.find((decision) => decision.name === 'p1')!.reason).to.include('daily physical');
  });
});

describe('the settings a server\'s restore_command carries', function () {
  const settingsFor = (env: Record<string, string>) => resolveSettings({process: env, dotenv: {}, cwd: '/srv/app'}, {uses: ['wal-archive']});

  it('spells out every location with absolute paths and the key file, never the key', function () {
    const directory = mkdtempSync(path.join(tmpdir(), 'synapse-portable-'));
    writeFileSync(path.join(directory, 'key'), 'portable-key-0123456789-abcdefghijklmnop\n', {mode: 0o600});
    const portable = portableSettings(
      resolveSettings({process: {BACKUP_LOCATIONS: 'local:./backups,offsite=s3://bucket/pg?region=eu-west-1&profile=offsite', BACKUP_ENCRYPTION_KEY_FILE: 'key', BACKUP_ENCRYPTION_ITERATIONS: '20000'}, dotenv: {}, cwd: directory}, {uses: ['wal-archive']}),
      directory,
    );
    rmSync(directory, {recursive: true});
    expect(JSON.stringify(portable.assignments)).to.not.include('portable-key');
    expect(portable.assignments).to.deep.equal([
      ['BACKUP_LOCATIONS', `primary=local:${directory}/backups,offsite=s3://bucket/pg?region=eu-west-1&profile=offsite`],
      ['BACKUP_ENCRYPTION_KEY_FILE', path.join(directory, 'key')],
      ['BACKUP_ENCRYPTION_ITERATIONS', '20000'],
    ]);
    expect(portable.serverNeeds).to.deep.equal([]);
  });

  it('names what the server must bring itself: a key from the environment, S3 keys', function () {
    const portable = portableSettings(settingsFor({BACKUP_STORAGE: 's3', BACKUP_S3_BUCKET: 'b', BACKUP_ENCRYPTION_KEY: 'the-secret-key-0123456789abcdef', AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'secret'}), '/srv/app');
    expect(JSON.stringify(portable.assignments)).to.not.include('the-secret-key');
    expect(JSON.stringify(portable.assignments)).to.not.include('secret');
    expect(portable.serverNeeds.join(' ')).to.include('BACKUP_ENCRYPTION_KEY').and.include('AWS_SECRET_ACCESS_KEY');
  });

  it('quotes for sh and doubles every % but those of %f and %p', function () {
    expect(shellWord("it's")).to.equal(`'it'\\''s'`);
    expect(serverCommand([['BACKUP_LOCATIONS', 'primary=local:/srv/100%/x y']], ['/opt/bin/synapse-backup', 'wal', 'fetch', '%f', '%p'])).to.equal("BACKUP_LOCATIONS='primary=local:/srv/100%%/x y' /opt/bin/synapse-backup wal fetch %f %p");
  });
});
