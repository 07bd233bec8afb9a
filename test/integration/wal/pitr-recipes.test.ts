import {expect} from 'chai';
import {execa} from 'execa';
import {chown, mkdir, readdir, readFile, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {PG_BIN, freePort, postgresUser, startThrowawayCluster, waitFor, type ThrowawayCluster} from '../../helpers/cluster.js';
import {readmeRecipe, withPaths} from '../../helpers/readme-recipes.js';
import {makeTempDir} from '../../helpers/temp.js';
import {walFileNames} from '../../helpers/storage.js';

/**
 * The README's PITR recipes, run as written (only the machine's paths, the port and the target
 * time replaced by the test's) as the postgres user: the archive settings and the env file on a
 * real server, a pg_basebackup recovered through `wal fetch` to a time between two committed
 * batches and to the end of the archive, and one archived segment read with openssl and zstd alone.
 */
describe('the README recipes for point-in-time recovery', function () {
  this.timeout(240_000);
  let cluster: ThrowawayCluster;
  let home: string;
  let archive: string;
  let paths: Record<string, string>;
  const restoredServers: string[] = [];

  before(async function () {
    home = (await makeTempDir('synapse-pitr-')).path;
    const {uid, gid} = postgresUser();
    await chown(home, uid, gid);
    const etc = path.join(home, 'etc', 'synapse-backup');
    await mkdir(etc, {recursive: true});
    archive = path.join(home, 'backups');
    await mkdir(archive);
    for (const directory of [path.join(home, 'etc'), etc, archive]) await chown(directory, uid, gid);
    await writeFile(path.join(etc, 'key'), 'pitr-recipe-key-0123456789-abcdefghijklmnopqrstuvwxyz\n', {mode: 0o600});
    await chown(path.join(etc, 'key'), uid, gid);
    paths = {'/etc/synapse-backup': etc, '/srv/synapse-backup': PROJECT_ROOT, '/var/backups/pg': archive};
    await writeFile(path.join(etc, 'wal.env'), withPaths(readmeRecipe('wal-env'), {'/etc/synapse-backup': etc, '/var/backups/pg': archive}));
    const settings = withPaths(readmeRecipe('wal-archive-settings'), {'/etc/synapse-backup': etc, '/srv/synapse-backup': PROJECT_ROOT});
    cluster = await startThrowawayCluster({settings: settings.trim().split('\n')});
    await cluster.psql('create table events(id int primary key, batch text)');
  });

  after(async function () {
    for (const data of restoredServers) await execa('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop'], {reject: false});
    await cluster?.stop();
    if (home) await execa('rm', ['-rf', home]);
  });

  /** Runs shell text as postgres on the server's host, with PGHOST/PGPORT pointing at the throwaway server. */
  function asPostgres(script: string, cwd = home) {
    return execa('runuser', ['-u', 'postgres', '--', 'env', `PGHOST=${cluster.directory}`, `PGPORT=${cluster.port}`, 'sh', '-ec', script], {cwd, reject: false, stdin: 'ignore'});
  }

  async function switchAndArchive(): Promise<void> {
    const last = await cluster.psql('select pg_walfile_name(pg_current_wal_insert_lsn())');
    await cluster.psql('select pg_switch_wal()');
    await waitFor(async () => (await cluster.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver")) >= last, `${last} to be archived`);
  }

  /**
   * The recipe's first line (the base backup), then what `between` does on the server, then the
   * rest of the recipe with the target `between` chose (none: the line is left out, as the README says).
   */
  async function restore(label: string, between: () => Promise<string | undefined>, options: {takesOver?: boolean} = {}): Promise<(sql: string) => Promise<string>> {
    const restored = path.join(home, label);
    const port = await freePort();
    const recipe = withPaths(readmeRecipe('pitr-with-pg-basebackup'), {...paths, '/var/lib/postgresql/15/restored': restored, "-p 5433": `-p ${port} -c unix_socket_directories=${home}`});
    const [baseBackup, ...rest] = recipe.trim().split('\n');
    const taken = await asPostgres(baseBackup!);
    expect(taken.exitCode, taken.stderr).to.equal(0);
    const target = await between();
    let remainder = target === undefined ? rest.join('\n').replace(/^recovery_target_time = .*\n/m, '') : withPaths(rest.join('\n'), {'2026-12-02 14:30:00+00': target});
    // A server that takes over archives, as the README says once `archive_mode = off` is removed.
    if (options.takesOver) remainder = remainder.replace(/^archive_mode = off\n/m, '');
    restoredServers.push(restored);
    const started = await asPostgres(remainder);
    const log = async (): Promise<string> => readFile(`${restored}.log`, 'utf8').catch(() => '');
    expect(started.exitCode, `${started.stderr}\n${await log()}`).to.equal(0);
    const query = async (sql: string): Promise<string> => (await execa('psql', ['-X', '-A', '-t', '-h', home, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', sql])).stdout;
    await waitFor(async () => (await query('select pg_is_in_recovery()').catch(() => 't')) === 'f', `recovery to end and promote (${label})`);
    const serverLog = await log();
    expect(serverLog).to.include('restored log file');
    expect(serverLog).to.not.match(/FATAL|PANIC/);
    return query;
  }

  /** Two committed batches of rows a second apart, archived; the time between them, as recovery_target_time takes it. */
  async function batchesAround(before: {batch: string; from: number; to: number}, after: {batch: string; from: number; to: number}): Promise<string> {
    const insert = (rows: typeof before) => cluster.psql(`insert into events select g, '${rows.batch}' from generate_series(${rows.from}, ${rows.to}) g`);
    await insert(before);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const target = await cluster.psql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await insert(after);
    await switchAndArchive();
    return target;
  }

  it('takes a physical backup with synapse-backup and restores it to a time between two batches, as the README says', async function () {
    const restored = path.join(home, 'restored-by-synapse');
    const port = await freePort();
    const recipe = withPaths(readmeRecipe('pitr-restore'), {'/etc/synapse-backup': paths['/etc/synapse-backup']!, '/srv/synapse-backup': PROJECT_ROOT, '/var/lib/postgresql/15/restored': restored, "-p 5433": `-p ${port} -c unix_socket_directories=${home}`});
    const [environment, backupLine, restoreLine, startLine] = recipe.trim().split('\n');
    const taken = await asPostgres(`${environment}\n${backupLine}`);
    expect(taken.exitCode, taken.stderr).to.equal(0);
    const name = /Backup (backup_daily_\S+\.tar\.zst\.enc) written/.exec(taken.stdout + taken.stderr)?.[1];
    expect(name, taken.stdout).to.be.a('string');
    const target = await batchesAround({batch: 'synapse-before', from: 5001, to: 5100}, {batch: 'synapse-after', from: 5101, to: 5200});
    restoredServers.push(restored);
    const rest = withPaths([environment, restoreLine, startLine].join('\n'), {'backup_daily_20261202_020000.tar.zst.enc': name!, '2026-12-02 14:30:00+00': target});
    const started = await asPostgres(rest);
    expect(started.exitCode, `${started.stderr}\n${await readFile(`${restored}.log`, 'utf8').catch(() => '')}`).to.equal(0);
    const query = async (sql: string): Promise<string> => (await execa('psql', ['-X', '-A', '-t', '-h', home, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', sql])).stdout;
    await waitFor(async () => (await query('select pg_is_in_recovery()').catch(() => 't')) === 'f', 'recovery of the synapse-backup base backup to promote');
    expect(await query("select batch, count(*) from events where batch like 'synapse-%' group by batch order by batch")).to.equal('synapse-before|100');
  });

  it('recovers a pg_basebackup through `wal fetch` to a time between two committed batches', async function () {
    const query = await restore('restored', async () => {
      return batchesAround({batch: 'before', from: 1, to: 1000}, {batch: 'after', from: 1001, to: 2000});
    });
    expect(await query("select batch, count(*) from events where batch in ('before', 'after') group by batch order by batch")).to.equal('before|1000');
  });

  it('replays all archived WAL when the target is left out', async function () {
    const query = await restore('restored-latest', async () => {
      await cluster.psql("insert into events select g, 'later' from generate_series(2001, 2500) g");
      await switchAndArchive();
      return undefined;
    });
    expect(await query("select batch, count(*) from events where batch in ('before', 'after', 'later') group by batch order by batch")).to.equal('after|1000\nbefore|1000\nlater|500');
  });

  it('follows a promotion: the new timeline is archived (its history and segments) into the same archive, and a later restore replays onto it', async function () {
    let promoted: ((sql: string) => Promise<string>) | undefined;
    const query = await restore('restored-onto-timeline', async () => {
      // The fork: a server recovered to a time between two batches takes over and writes on.
      promoted = await restore(
        'promoted',
        async () => {
          return batchesAround({batch: 'fork-before', from: 3001, to: 3100}, {batch: 'fork-after', from: 3101, to: 3200});
        },
        {takesOver: true},
      );
      const timeline = Number(await promoted('select timeline_id from pg_control_checkpoint()'));
      expect(timeline).to.be.greaterThan(1);
      await promoted("insert into events select g, 'new-timeline' from generate_series(4001, 4050) g");
      const last = await promoted('select pg_walfile_name(pg_current_wal_insert_lsn())');
      await promoted('select pg_switch_wal()');
      await waitFor(async () => (await promoted!("select coalesce(last_archived_wal, '') from pg_stat_archiver")) >= last, `${last} to be archived by the promoted server`);
      const archived = await walFileNames(archive);
      expect(archived.some((name) => name.startsWith(`${String(timeline).padStart(8, '0')}.history-`)), 'the history file').to.equal(true);
      expect(archived.some((name) => name.startsWith(`${String(timeline).padStart(8, '0')}`) && /^[0-9A-F]{24}-/.test(name)), 'segments of the new timeline').to.equal(true);
      return undefined;
    });
    // From a base backup of before the fork, recovery follows the newest timeline (PostgreSQL's default) through the fetched history.
    expect(await query("select batch, count(*) from events where batch in ('fork-before', 'fork-after', 'new-timeline') group by batch order by batch")).to.equal('fork-before|100\nnew-timeline|50');
  });

  it('drills the newest physical backup as the README says, as postgres: recovered through all the archived WAL on a scratch server, checked, removed', async function () {
    const recipe = withPaths(readmeRecipe('pitr-drill'), {'/etc/synapse-backup': paths['/etc/synapse-backup']!, '/srv/synapse-backup': PROJECT_ROOT});
    // As written: the scratch directory goes to the temporary directory, /tmp.
    const drillsInTmp = async (): Promise<string[]> => (await readdir('/tmp')).filter((entry) => entry.startsWith('synapse-drill-'));
    const before = await drillsInTmp();
    const drilled = await execa('runuser', ['-u', 'postgres', '--', 'sh', '-ec', recipe], {cwd: home, reject: false, stdin: 'ignore'});
    expect(drilled.exitCode, `${drilled.stdout}\n${drilled.stderr}`).to.equal(0);
    expect(drilled.stdout).to.match(/Drill of backup_daily_\S+\.tar\.zst\.enc/).and.include('pg_amcheck').and.include('The scratch server was stopped and its directory removed.');
    expect(await drillsInTmp()).to.deep.equal(before);
  });

  it('reads an archived segment with openssl and zstd alone', async function () {
    const segment = (await walFileNames(archive)).find((name) => /^[0-9A-F]{24}-/.test(name) && !name.startsWith('000000010000000000000001-'))!.slice(0, 24);
    const scratch = path.join(home, 'stock');
    await mkdir(scratch);
    await chown(scratch, postgresUser().uid, postgresUser().gid);
    const recipe = withPaths(readmeRecipe('wal-stock-tools'), {'/etc/synapse-backup': paths['/etc/synapse-backup']!, '/var/backups/pg': archive, '000000010000000000000003': segment});
    const read = await execa('runuser', ['-u', 'postgres', '--', 'bash', '-ec', recipe], {cwd: scratch, reject: false});
    expect(read.exitCode, read.stderr).to.equal(0);
    // What `wal fetch` gives recovery (after checking the MAC) is what the stock tools read.
    const fetched = await asPostgres(`set -a && . ${paths['/etc/synapse-backup']}/wal.env && ${PROJECT_ROOT}/bin/synapse-backup wal fetch ${segment} ${scratch}/fetched`);
    expect(fetched.exitCode, fetched.stderr).to.equal(0);
    const stock = await readFile(path.join(scratch, segment));
    expect(stock.length).to.equal(16 * 1024 * 1024);
    expect(stock.equals(await readFile(path.join(scratch, 'fetched')))).to.equal(true);
  });
});
