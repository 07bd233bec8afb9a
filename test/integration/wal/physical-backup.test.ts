import {expect} from 'chai';
import {execa} from 'execa';
import {appendFile, chown, mkdir, readdir, readFile, rename, stat, writeFile} from 'node:fs/promises';
import {existsSync} from 'node:fs';
import path from 'node:path';

import {PROJECT_ROOT, runCli, type CliResult} from '../../helpers/cli.js';
import {PG_BIN, freePort, postgresUser, startThrowawayCluster, waitFor, type ThrowawayCluster} from '../../helpers/cluster.js';
import {makeTempDir} from '../../helpers/temp.js';
import {walFile, walFileNames} from '../../helpers/storage.js';

const LAUNCHER = path.join(PROJECT_ROOT, 'bin', 'synapse-backup');
const KEY = 'physical-test-key-0123456789-abcdefghijklmnopqrstuvwxyz';

/**
 * Physical base backups against a real PostgreSQL that archives through `wal push`, restored with
 * `backup restore --data-dir` and started the way the restore says, as the postgres user: to a
 * time between two committed batches, to the end of the archive, and onto a promoted server's new
 * timeline; plus what verify finds in the archive and what cleanup keeps of it.
 */
describe('physical backups and point-in-time restore', function () {
  this.timeout(300_000);
  let cluster: ThrowawayCluster;
  let home: string;
  let archive: string;
  let env: Record<string, string>;
  let envFile: string;
  const started: string[] = [];

  before(async function () {
    home = (await makeTempDir('synapse-physical-')).path;
    const {uid, gid} = postgresUser();
    await chown(home, uid, gid);
    archive = path.join(home, 'archive');
    await mkdir(archive);
    await chown(archive, uid, gid);
    const keyFile = path.join(home, 'key');
    await writeFile(keyFile, `${KEY}\n`, {mode: 0o600});
    await chown(keyFile, uid, gid);
    envFile = path.join(home, 'env');
    await writeFile(envFile, `BACKUP_DIR=${archive}\nBACKUP_ENCRYPTION_KEY_FILE=${keyFile}\nBACKUP_ENCRYPTION_ITERATIONS=20000\nBACKUP_COMPRESSION=zstd\n`);
    cluster = await startThrowawayCluster({
      settings: ['archive_mode = on', `archive_command = 'set -a && . ${envFile} && exec ${LAUNCHER} wal push %p'`, 'archive_timeout = 0'],
    });
    env = {BACKUP_DIR: archive, BACKUP_ENCRYPTION_KEY_FILE: keyFile, BACKUP_ENCRYPTION_ITERATIONS: '20000', BACKUP_COMPRESSION: 'zstd', DATABASE_URL: cluster.url('postgres', 'postgres')};
    await cluster.psql('create table events(id serial primary key, batch text not null, at timestamptz not null default clock_timestamp())');
  });

  after(async function () {
    for (const data of started) await execa('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop'], {reject: false});
    await cluster?.stop();
    if (home) await execa('rm', ['-rf', home]);
  });

  function cli(args: string[], extra: Record<string, string | undefined> = {}): Promise<CliResult> {
    return runCli(args, {cwd: home, env: {...env, ...extra}, timeoutMs: 240_000});
  }

  async function switchAndArchive(): Promise<void> {
    const last = await cluster.psql('select pg_walfile_name(pg_current_wal_insert_lsn())');
    await cluster.psql('select pg_switch_wal()');
    await waitFor(async () => (await cluster.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver")) >= last, `${last} to be archived`);
  }

  async function batch(name: string, rows = 100): Promise<void> {
    await cluster.psql(`insert into events(batch) select '${name}' from generate_series(1, ${rows})`);
  }

  /** Restores with the given flags, then starts the server exactly as the restore printed it, on a port of its own. */
  async function restoreAndStart(name: string, label: string, flags: string[]): Promise<{query: (sql: string) => Promise<string>; data: string; restored: CliResult}> {
    const data = path.join(home, label);
    const restored = await cli(['backup', 'restore', name, '--data-dir', data, ...flags, '--json']);
    expect(restored.exitCode, restored.stderr).to.equal(0);
    const port = await freePort();
    // Only where it listens: the machine's own server has 5432 and its socket directory.
    await appendFile(path.join(data, 'postgresql.auto.conf'), `port = ${port}\nunix_socket_directories = '${home}'\nlisten_addresses = ''\n`);
    started.push(data);
    const printed = restored.json.result.startCommand as string;
    const start = await execa('sh', ['-c', printed], {reject: false, stdin: 'ignore'});
    expect(start.exitCode, `${start.stderr}\n${await readFile(`${data}.log`, 'utf8').catch(() => '')}`).to.equal(0);
    const query = async (sql: string): Promise<string> => (await execa('psql', ['-X', '-A', '-t', '-h', home, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', sql])).stdout;
    await waitFor(async () => (await query('select pg_is_in_recovery()').catch(() => 't')) === 'f', `recovery of ${label} to end and promote`, 120_000);
    return {query, data, restored};
  }

  async function stopServer(data: string): Promise<void> {
    await execa('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'fast', '-w', 'stop'], {reject: false});
  }

  let base: string;
  let betweenBatches: string;

  it('takes a physical backup: pg_basebackup streamed, encrypted, with its WAL range, published once its stop segment is archived', async function () {
    await batch('before-backup');
    const result = await cli(['backup', 'run', '--method', 'physical', '--backup-type', 'daily', '--json']);
    expect(result.exitCode, result.stderr).to.equal(0);
    base = result.json.result.name;
    expect(base).to.match(/^backup_daily_\d{8}_\d{6}\.tar\.zst\.enc$/);
    const metadata = JSON.parse(await readFile(path.join(archive, `${base}.meta.json`), 'utf8'));
    expect(metadata.dump).to.include({tool: 'pg_basebackup', format: 'tar', wal: 'archive'});
    const sysid = await cluster.psql('select system_identifier from pg_control_system()');
    expect(metadata.physical.systemIdentifier).to.equal(sysid);
    expect(metadata.physical.timeline).to.equal(1);
    expect(metadata.physical.stopWalFile >= metadata.physical.startWalFile).to.equal(true);
    expect(metadata.authentication?.mac).to.match(/^[0-9a-f]{64}$/);
    const archived = await walFileNames(archive);
    expect(archived.some((key) => key.startsWith(`${metadata.physical.stopWalFile}-`)), 'stop segment archived').to.equal(true);
    // Nothing of the cluster is readable in the stored file.
    const stored = await readFile(path.join(archive, base));
    expect(stored.subarray(0, 8).toString('latin1')).to.equal('Salted__');
    const list = await cli(['backup', 'list', '--json']);
    expect(list.exitCode, list.stderr).to.equal(0);
    expect(JSON.stringify(list.json.result)).to.include(base);
  });

  it('publishes nothing when its stop segment does not reach the archive at its location', async function () {
    const elsewhere = path.join(home, 'elsewhere');
    await mkdir(elsewhere);
    const result = await cli(['backup', 'run', '--method', 'physical'], {BACKUP_DIR: elsewhere, BACKUP_WAL_WAIT_SECONDS: '2'});
    expect(result.exitCode, result.stderr).to.equal(16);
    expect(result.stderr).to.include('did not arrive in the WAL archive');
    expect((await readdir(elsewhere)).filter((entry) => entry.startsWith('backup_'))).to.deep.equal([]);
  });

  it('publishes nothing from a pg_basebackup whose tar was cut short, though it exited 0', async function () {
    const fakeBin = path.join(home, 'fake-bin');
    await mkdir(fakeBin);
    await writeFile(path.join(fakeBin, 'pg_basebackup'), `#!/bin/sh\n[ "$1" = --version ] && exec ${path.join(PG_BIN, 'pg_basebackup')} --version\n${path.join(PG_BIN, 'pg_basebackup')} "$@" | head -c -1024\n`, {mode: 0o755});
    const before = await readdir(archive);
    const result = await cli(['backup', 'run', '--method', 'physical'], {PG_BIN_DIR: fakeBin});
    expect(result.exitCode, result.stderr).to.equal(5);
    expect(result.stderr).to.include('end-of-archive marker');
    expect((await readdir(archive)).filter((entry) => entry.startsWith('backup_'))).to.deep.equal(before.filter((entry) => entry.startsWith('backup_')));
  });

  it('refuses a server that does not archive, and an archive whose identity is not authentic, before the backup starts', async function () {
    const unarchived = await cli(['backup', 'run', '--method', 'physical'], {DATABASE_URL: undefined, PGHOST: '/var/run/postgresql', PGUSER: 'postgres', PGDATABASE: 'postgres'});
    expect(unarchived.exitCode, unarchived.stderr).to.equal(2);
    expect(unarchived.stderr).to.include('does not archive WAL');
    const planted = path.join(home, 'planted');
    await mkdir(path.join(planted, 'wal'), {recursive: true});
    await writeFile(path.join(planted, 'wal', 'archive.json'), JSON.stringify({formatVersion: 1, systemIdentifier: '42', createdAt: '2026-01-01T00:00:00Z'}));
    const forged = await cli(['backup', 'run', '--method', 'physical'], {BACKUP_DIR: planted});
    expect(forged.exitCode, forged.stderr).to.equal(14);
    expect((await readdir(planted)).filter((entry) => entry.startsWith('backup_'))).to.deep.equal([]);
  });

  it('verifies a physical backup with the WAL after it: continuous, read to the end, authenticated', async function () {
    await batch('after-backup');
    await switchAndArchive();
    const verified = await cli(['backup', 'verify', base, '--json']);
    expect(verified.exitCode, verified.stdout + verified.stderr).to.equal(0);
    const checks = verified.json.result.backups[0].checks as Array<{check: string; status: string; detail: string}>;
    expect(checks.find((check) => check.check === 'completion')?.status).to.equal('passed');
    expect(checks.find((check) => check.check === 'wal')).to.include({status: 'passed'});
  });

  it('restores to a time between two committed batches: rows committed before it present, after it absent', async function () {
    await batch('first');
    await switchAndArchive();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    betweenBatches = await cluster.psql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await batch('second');
    await switchAndArchive();
    const {query, data, restored} = await restoreAndStart(base, 'to-time', ['--target-time', betweenBatches]);
    expect(restored.json.result.target).to.equal(`time ${betweenBatches}`);
    const batches = await query('select batch, count(*) from events group by batch order by batch');
    expect(batches.split('\n')).to.deep.equal(['after-backup|100', 'before-backup|100', 'first|100']);
    // Owned by the server's user, 0700, with the recovery settings written by the restore.
    const {uid} = postgresUser();
    const info = await stat(data);
    expect(info.uid).to.equal(uid);
    expect(info.mode & 0o777).to.equal(0o700);
    const settings = await readFile(path.join(data, 'postgresql.auto.conf'), 'utf8');
    expect(settings).to.include("recovery_target_action = 'promote'");
    expect(settings).to.include('archive_mode = off');
    expect(settings).to.match(/restore_command = '.*bin\/synapse-backup wal fetch %f %p'/);
    // The key itself is never written, only its file's path.
    expect(settings).to.not.include(KEY);
    expect(settings).to.include(`BACKUP_ENCRYPTION_KEY_FILE=${path.join(home, 'key')}`);
    await stopServer(data);
  });

  it('restores with --latest: all the archived WAL replayed', async function () {
    const {query, data} = await restoreAndStart(base, 'latest', ['--latest']);
    expect(await query("select count(*) from events where batch = 'second'")).to.equal('100');
    await stopServer(data);
  });

  it('refuses a target before the backup ended, or past the archived WAL, before it writes anything', async function () {
    const metadata = JSON.parse(await readFile(path.join(archive, `${base}.meta.json`), 'utf8'));
    const early = path.join(home, 'too-early');
    const before = await cli(['backup', 'restore', base, '--data-dir', early, '--target-time', '2020-01-01 00:00:00+00']);
    expect(before.exitCode, before.stderr).to.equal(2);
    expect(before.stderr).to.include('before its base backup');
    expect(existsSync(early)).to.equal(false);
    const late = await cli(['backup', 'restore', base, '--data-dir', early, '--target-time', '2099-01-01 00:00:00+00']);
    expect(late.exitCode, late.stderr).to.equal(2);
    expect(late.stderr).to.include('the archived WAL reaches');
    expect(existsSync(early)).to.equal(false);
    const lsn = await cli(['backup', 'restore', base, '--data-dir', early, '--target-lsn', '0/1']);
    expect(lsn.exitCode, lsn.stderr).to.equal(2);
    expect(lsn.stderr).to.include(metadata.physical.stopLsn);
    expect(existsSync(early)).to.equal(false);
  });

  it('refuses a directory that is not empty, a logical restore of a physical backup, and an unauthenticated one', async function () {
    const busy = path.join(home, 'busy');
    await mkdir(busy);
    await writeFile(path.join(busy, 'PG_VERSION'), '15\n');
    const refused = await cli(['backup', 'restore', base, '--data-dir', busy, '--latest']);
    expect(refused.exitCode, refused.stderr).to.equal(2);
    expect(refused.stderr).to.include('not empty');
    expect(await readdir(busy)).to.deep.equal(['PG_VERSION']);
    const logical = await cli(['backup', 'restore', base, '--yes']);
    expect(logical.exitCode).to.equal(2);
    expect(logical.stderr).to.include('--data-dir');
    const noKey = await cli(['backup', 'restore', base, '--data-dir', path.join(home, 'no-key'), '--latest'], {BACKUP_ENCRYPTION_KEY_FILE: undefined});
    expect(noKey.exitCode).to.not.equal(0);
    expect(existsSync(path.join(home, 'no-key'))).to.equal(false);
  });

  it('restores onto the new timeline of a server that was promoted and took over', async function () {
    // A copy recovered to between the batches takes over: archiving on, it writes timeline 2 into the same archive.
    const {query, data, restored} = await restoreAndStart(base, 'takes-over', ['--target-time', betweenBatches]);
    // As the restore says: archive_mode = off removed, a restart, then the new timeline's history pushed with the printed command.
    await stopServer(data);
    const autoConf = path.join(data, 'postgresql.auto.conf');
    await writeFile(autoConf, (await readFile(autoConf, 'utf8')).replace(/^archive_mode = off\n/m, ''));
    const log = `${data}.log`;
    await execa('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_ctl'), '-D', data, '-l', log, '-w', 'start']);
    expect(restored.json.result.takeOverCommand).to.include('00000002.history');
    const pushed = await execa('sh', ['-c', restored.json.result.takeOverCommand], {reject: false, stdin: 'ignore', env: {PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'}, extendEnv: false});
    expect(pushed.exitCode, pushed.stderr).to.equal(0);
    expect(await query('select timeline_id from pg_control_checkpoint()')).to.equal('2');
    await query("insert into events(batch) select 'on-timeline-2' from generate_series(1, 10)");
    const last = await query('select pg_walfile_name(pg_current_wal_insert_lsn())');
    await query('select pg_switch_wal()');
    await waitFor(async () => (await query("select coalesce(last_archived_wal, '') from pg_stat_archiver")) >= last, `${last} to be archived from timeline 2`);
    await stopServer(data);
    expect((await walFileNames(archive)).some((key) => key.startsWith('00000002.history-'))).to.equal(true);
    const onTimeline2 = await restoreAndStart(base, 'timeline-2', ['--latest']);
    expect(onTimeline2.restored.json.result.archiveReach.timeline).to.equal(2);
    const batches = await onTimeline2.query('select batch, count(*) from events group by batch order by batch');
    expect(batches.split('\n')).to.deep.equal(['after-backup|100', 'before-backup|100', 'first|100', 'on-timeline-2|10']);
    expect(await onTimeline2.query('select timeline_id > 2 from pg_control_checkpoint()')).to.equal('t');
    await stopServer(onTimeline2.data);
  });

  it('verify names a gap in the WAL after a base backup, and the backup is restorable again once it is back', async function () {
    const metadata = JSON.parse(await readFile(path.join(archive, `${base}.meta.json`), 'utf8'));
    const segments = (await walFileNames(archive)).filter((key) => /^00000001[0-9A-F]{16}-/.test(key)).sort();
    const after = segments.filter((key) => key.slice(0, 24) > metadata.physical.stopWalFile);
    expect(after.length).to.be.at.least(2);
    const hidden = after[0]!;
    await rename(walFile(archive, hidden), path.join(home, hidden));
    try {
      const verified = await cli(['backup', 'verify', base, '--json']);
      expect(verified.exitCode).to.equal(16);
      const wal = (verified.json.error.details.backups[0].checks as Array<{check: string; status: string; detail: string}>).find((check) => check.check === 'wal')!;
      expect(wal.status).to.equal('failed');
      expect(wal.detail).to.include(hidden.slice(0, 24));
    } finally {
      await rename(path.join(home, hidden), walFile(archive, hidden));
    }
  });

  it('verify names a damaged archived segment the backup needs', async function () {
    const metadata = JSON.parse(await readFile(path.join(archive, `${base}.meta.json`), 'utf8'));
    const victim = (await walFileNames(archive)).filter((key) => /^00000001[0-9A-F]{16}-/.test(key) && key.slice(0, 24) > metadata.physical.stopWalFile).sort()[0]!;
    const original = await readFile(walFile(archive, victim));
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)] ^= 0xff;
    await writeFile(walFile(archive, victim), damaged);
    try {
      const verified = await cli(['backup', 'verify', base, '--json']);
      expect(verified.exitCode).to.be.oneOf([13, 14]);
      const wal = (verified.json.error.details.backups[0].checks as Array<{check: string; status: string; detail: string}>).find((check) => check.check === 'wal')!;
      expect(wal.status).to.equal('failed');
      expect(wal.detail).to.include(victim.slice(0, 24));
      // The base backup itself is whole: no verification record condemns it.
      const list = await cli(['backup', 'list', '--json']);
      expect(list.json.result.backups.find((backup: {name: string}) => backup.name === base).health).to.equal('good');
    } finally {
      await writeFile(walFile(archive, victim), original);
    }
  });

  it('cleanup keeps exactly the WAL the kept base backups need', async function () {
    // A second base backup; with one daily backup kept, the first goes, and with it the WAL before the second's start.
    await batch('before-second-backup');
    const second = await cli(['backup', 'run', '--method', 'physical', '--backup-type', 'daily', '--json']);
    expect(second.exitCode, second.stderr).to.equal(0);
    const secondMeta = JSON.parse(await readFile(path.join(archive, `${second.json.result.name}.meta.json`), 'utf8'));
    // The read-back cleanup waits for before it removes the first.
    expect((await cli(['backup', 'verify', second.json.result.name])).exitCode).to.equal(0);
    const before = (await walFileNames(archive)).filter((key) => key !== 'archive.json');
    const cleaned = await cli(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_DAILY: '1'});
    expect(cleaned.exitCode, cleaned.stderr).to.equal(0);
    expect(cleaned.json.result.decisions.find((decision: {name: string}) => decision.name === base).action).to.equal('remove');
    const after = (await walFileNames(archive)).filter((key) => key !== 'archive.json');
    const start = secondMeta.physical.startWalFile.slice(8);
    const expectedKept = before.filter((key) => key.includes('.history-') || key.slice(8, 24) >= start);
    expect(after.sort()).to.deep.equal(expectedKept.sort());
    expect(cleaned.json.result.wal.removedKeys.map((key: string) => key.replace(/^wal\//, '')).sort()).to.deep.equal(before.filter((key) => !expectedKept.includes(key)).sort());
    expect(before.length - after.length).to.be.greaterThan(0);
    // What is left restores the kept backup to the end.
    const {query, data} = await restoreAndStart(second.json.result.name, 'after-cleanup', ['--latest']);
    expect(await query("select count(*) from events where batch = 'before-second-backup'")).to.equal('100');
    await stopServer(data);
  });
});

describe('physical backups without a key', function () {
  this.timeout(180_000);
  let cluster: ThrowawayCluster;
  let home: string;

  before(async function () {
    home = (await makeTempDir('synapse-physical-plain-')).path;
    const {uid, gid} = postgresUser();
    await chown(home, uid, gid);
    const archive = path.join(home, 'archive');
    await mkdir(archive);
    await chown(archive, uid, gid);
    const envFile = path.join(home, 'env');
    await writeFile(envFile, `BACKUP_DIR=${archive}\n`);
    cluster = await startThrowawayCluster({settings: ['archive_mode = on', `archive_command = 'set -a && . ${envFile} && exec ${LAUNCHER} wal push %p'`]});
  });

  after(async function () {
    await cluster?.stop();
    if (home) await execa('rm', ['-rf', home]);
  });

  it('restores an unauthenticated physical backup only when asked to, since the server runs its files', async function () {
    const env = {BACKUP_DIR: path.join(home, 'archive'), DATABASE_URL: cluster.url('postgres', 'postgres')};
    const taken = await runCli(['backup', 'run', '--method', 'physical', '--json'], {cwd: home, env});
    expect(taken.exitCode, taken.stderr).to.equal(0);
    const name = taken.json.result.name as string;
    expect(name).to.match(/\.tar\.gz$/);
    const target = path.join(home, 'restored');
    const refused = await runCli(['backup', 'restore', name, '--data-dir', target, '--latest'], {cwd: home, env});
    expect(refused.exitCode, refused.stderr).to.equal(14);
    expect(refused.stderr).to.include('--allow-unauthenticated');
    expect(existsSync(target)).to.equal(false);
    const allowed = await runCli(['backup', 'restore', name, '--data-dir', target, '--latest', '--allow-unauthenticated'], {cwd: home, env});
    expect(allowed.exitCode, allowed.stderr).to.equal(0);
    expect(allowed.stderr).to.include('unauthenticated');
    expect(existsSync(path.join(target, 'PG_VERSION'))).to.equal(true);
    expect(existsSync(path.join(target, 'recovery.signal'))).to.equal(true);
  });
});
