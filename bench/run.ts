/**
 * npm run bench -- [--size MB] [--runs N] [--rss-sizes MB,MB|none] [--cases id,id] [--out file.json]
 *                  [--cache DIR | --fresh] [--profile] [--skip-levels] [--compare earlier.json]
 *                  [--suite all|backup|wal] [--wal-scale N] [--wal-seconds S]
 *
 * Builds (or reuses) a benchmark database on a throwaway cluster, then measures, interleaved, our
 * backup and restore against pg_dump, the shell pipeline and psql. Prints medians and ratios and
 * writes every sample as JSON, for comparison across commits. The WAL suite (bench/wal-archiving.ts)
 * measures archiving throughput against pgBackRest's asynchronous archive-push.
 */
import {execFileSync} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile} from 'node:fs/promises';
import {availableParallelism, cpus, totalmem} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';

import {PG_BIN, startThrowawayCluster, type ThrowawayCluster} from '../test/helpers/cluster.js';
import {startS3Server, type S3Endpoint} from '../test/helpers/s3fs-mount.js';
import {BACKUP_CASES, RESTORE_CASES, s3Environment, type BenchCase, type CaseContext} from './cases.js';
import {formatProfile, readProfileIn, summarizeProfile, type ProfileSummary} from './cpu-profile.js';
import {ensureDataset, fingerprint, planDataset, type DatasetInfo} from './dataset.js';
import {formatLevels, measureLevels} from './levels.js';
import {measure, type Measurement} from './measure.js';
import {measureWalArchiving, type WalArchivingResult} from './wal-archiving.js';
import {evaluateTargets, formatComparison, formatTable, formatTargets, summarize, type CaseSamples, type CaseSummary, type RssBySize} from './report.js';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RESTORE_DATABASE = 'bench_restore';

const {values: options} = parseArgs({
  options: {
    size: {type: 'string', default: '1000'},
    runs: {type: 'string', default: '3'},
    'rss-sizes': {type: 'string', default: '100'},
    cases: {type: 'string'},
    out: {type: 'string'},
    cache: {type: 'string', default: '/var/tmp/synapse-backup-bench'},
    fresh: {type: 'boolean', default: false},
    profile: {type: 'boolean', default: false},
    'skip-levels': {type: 'boolean', default: false},
    compare: {type: 'string'},
    suite: {type: 'string', default: 'all'},
    'wal-scale': {type: 'string', default: '40'},
    'wal-seconds': {type: 'string', default: '20'},
  },
});

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function positiveNumber(name: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got '${raw}'`);
  return value;
}

async function dropRestoreTargets(cluster: ThrowawayCluster): Promise<void> {
  const names = (await cluster.psql(`SELECT datname FROM pg_database WHERE datname LIKE '${RESTORE_DATABASE}%'`)).split('\n').filter(Boolean);
  for (const name of names) await cluster.psql(`DROP DATABASE "${name}" WITH (FORCE)`);
}

async function onlyBackupIn(directory: string): Promise<string> {
  const names = (await readdir(directory)).filter((name) => name.startsWith('backup_') && !name.endsWith('.meta.json'));
  if (names.length !== 1) throw new Error(`expected one backup in ${directory}, found ${names.length}`);
  return names[0]!;
}

function selected(cases: readonly BenchCase[]): BenchCase[] {
  const wanted = options.cases?.split(',').map((id) => id.trim());
  return cases.filter((entry) => {
    if (wanted && !wanted.includes(entry.id)) return false;
    const missing = entry.unavailable?.();
    if (missing) log(`skipping ${entry.id}: ${missing}`);
    return !missing;
  });
}

/** Each run starts one case later, so no case always follows the same neighbour (a big DROP DATABASE, a cold cache). */
function rotated<T>(cases: readonly T[], run: number): T[] {
  const shift = (run - 1) % Math.max(1, cases.length);
  return [...cases.slice(shift), ...cases.slice(0, shift)];
}

/** Removes what one run of an S3 case stored, through the backend itself. */
async function emptyPrefix(env: Record<string, string>): Promise<void> {
  const {S3Storage} = (await import(path.join(PROJECT, 'plugins', 'storage-s3', 'dist', 'index.js'))) as typeof import('../plugins/storage-s3/src/index.js');
  const saved = {id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY};
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
  try {
    const storage = await S3Storage.open(env, 'read');
    for (const object of await storage.list()) await storage.delete(object.key);
    await storage.close();
  } finally {
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    else process.env.AWS_ACCESS_KEY_ID = saved.id;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  }
}

function commitOf(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {cwd: PROJECT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim();
  } catch {
    return undefined;
  }
}

async function walSuite(runs: number, work: string): Promise<WalArchivingResult> {
  const result = await measureWalArchiving({runs, scale: positiveNumber('wal-scale', options['wal-scale']), pgbenchSeconds: positiveNumber('wal-seconds', options['wal-seconds']), work, log});
  log('');
  for (const [tool, megabytesPerSecond] of Object.entries(result.medians)) log(`${tool.padEnd(34)} median ${megabytesPerSecond.toFixed(0)} MB/s`);
  for (const target of result.targets) log(`${target.met ? 'MET ' : 'MISS'} ${target.target}: ${target.detail}`);
  return result;
}

async function main(): Promise<void> {
  if (!['all', 'backup', 'wal'].includes(options.suite)) throw new Error(`--suite must be all, backup or wal, got '${options.suite}'`);
  if (options.suite === 'wal') {
    if (process.getuid?.() !== 0) throw new Error('the benchmark starts its own PostgreSQL cluster as the postgres user, which needs root (runuser)');
    const work = await mkdtemp(path.join('/tmp', 'synapse-bench-wal-'));
    try {
      const wal = await walSuite(Math.round(positiveNumber('runs', options.runs)), work);
      const out = options.out ?? path.join(PROJECT, 'bench-results', `bench-wal-${new Date().toISOString().replaceAll(':', '-')}.json`);
      await mkdir(path.dirname(out), {recursive: true});
      await writeFile(out, `${JSON.stringify({formatVersion: 1, measuredAt: new Date().toISOString(), commit: commitOf(), machine: {cores: availableParallelism(), cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version}, wal}, null, 2)}\n`);
      log(`\nresults written to ${out}`);
    } finally {
      await rm(work, {recursive: true, force: true});
    }
    return;
  }
  const size = positiveNumber('size', options.size);
  const runs = Math.round(positiveNumber('runs', options.runs));
  const rssSizes = options['rss-sizes'] === 'none' ? [] : options['rss-sizes'].split(',').map((raw) => positiveNumber('rss-sizes', raw)).filter((extra) => extra !== size);
  if (process.getuid?.() !== 0) throw new Error('the benchmark starts its own PostgreSQL cluster as the postgres user, which needs root (runuser)');

  const cluster = await startThrowawayCluster(options.fresh ? {} : {keepIn: path.join(options.cache, 'cluster')});
  const work = await mkdtemp(path.join(options.fresh ? '/tmp' : options.cache, 'run-'));
  let s3: S3Endpoint | undefined;
  const stopAll = async (): Promise<void> => {
    await rm(work, {recursive: true, force: true});
    await s3?.stop();
    await cluster.stop();
  };
  process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));
  try {
    const serverPid = Number((await readFile(path.join(cluster.directory, 'data', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const dataset = await ensureDataset(cluster, planDataset(size), log);
    const sourceFingerprint = await fingerprint(cluster, dataset.database);
    const plainDump = path.join(work, 'plain.sql');
    execFileSync(path.join(PG_BIN, 'pg_dump'), ['-d', cluster.url('postgres', dataset.database), '-f', plainDump]);
    const dumpBytes = (await stat(plainDump)).size;
    execFileSync('bash', ['-c', `gzip -6 -c "${plainDump}" > "${plainDump}.gz"`]);
    log(`database ${dataset.database}: ${(dataset.databaseBytes / 1e6).toFixed(0)} MB on disk, ${(dumpBytes / 1e6).toFixed(0)} MB of plain dump${dataset.reused ? ' (reused)' : ''}`);

    const key = randomBytes(32).toString('base64');
    const context = (runDirectory: string, database: string, backupSources: CaseContext['backupSources']): CaseContext => ({
      pgBin: PG_BIN,
      sourceUrl: cluster.url('postgres', database),
      restoreUrl: cluster.url('postgres', RESTORE_DATABASE),
      node: process.execPath,
      cli: path.join(PROJECT, 'bin', 'run.js'),
      key,
      runDirectory,
      plainDump,
      plainDumpGz: `${plainDump}.gz`,
      backupSources,
      s3,
    });
    const noSources = {gzip: {directory: '', name: ''}, zstd: {directory: '', name: ''}};

    /** One measured run; a restore goes into a fresh database and must bring back `expected` (the source's fingerprint). */
    const runCase = async (entry: BenchCase, runLabel: string, database: string, backupSources: CaseContext['backupSources'], expected: string): Promise<Measurement> => {
      const directory = path.join(work, `${entry.id}-${runLabel.replaceAll(' ', '-')}`);
      await mkdir(directory);
      if (entry.kind === 'restore') {
        await dropRestoreTargets(cluster);
        await cluster.psql(`CREATE DATABASE ${RESTORE_DATABASE}`);
        await cluster.psql('CHECKPOINT');
      }
      const caseContext = context(directory, database, backupSources);
      const result = await measure(entry.command(caseContext), serverPid);
      // radosgw keeps objects in memory: each run's backup goes once measured.
      if (entry.id.endsWith('-s3') && s3) await emptyPrefix(s3Environment(s3, directory));
      if (entry.kind === 'restore') {
        const restored = await fingerprint(cluster, RESTORE_DATABASE);
        if (restored !== expected) throw new Error(`${entry.id} restored different data from ${database}: ${restored} instead of ${expected}`);
      }
      await rm(directory, {recursive: true, force: true});
      log(`  ${runLabel.padEnd(8)} ${entry.id.padEnd(22)} ${result.wallSeconds.toFixed(2).padStart(7)} s  cpu ${result.cpuSeconds.toFixed(1)} s  server ${result.serverCpuSeconds.toFixed(1)} s  rss ${(result.peakRssBytes / 1e6).toFixed(0)} MB`);
      return result;
    };

    const samples = new Map<BenchCase, Measurement[]>();
    const backupCases = selected(BACKUP_CASES);
    if (backupCases.some((entry) => entry.id.endsWith('-s3'))) {
      log('starting Ceph radosgw on loopback for the S3 case');
      s3 = await startS3Server('radosgw');
    }
    const restoreCases = selected(RESTORE_CASES);
    log(`backups, ${runs} interleaved runs:`);
    for (let run = 1; run <= runs; run++) {
      for (const entry of rotated(backupCases, run)) samples.set(entry, [...(samples.get(entry) ?? []), await runCase(entry, `run ${run}`, dataset.database, noSources, sourceFingerprint)]);
    }

    const makeSources = async (database: string): Promise<CaseContext['backupSources']> => {
      const sources: Record<'gzip' | 'zstd', {directory: string; name: string}> = {gzip: {directory: '', name: ''}, zstd: {directory: '', name: ''}};
      for (const compression of ['gzip', 'zstd'] as const) {
        const directory = path.join(work, `source-${database}-${compression}`);
        await mkdir(directory);
        const maker = BACKUP_CASES.find((entry) => entry.id === `synapse-${compression}`)!;
        await measure(maker.command(context(directory, database, noSources)), undefined);
        const backups = path.join(directory, 'synapse');
        sources[compression] = {directory: backups, name: await onlyBackupIn(backups)};
      }
      return sources;
    };
    if (restoreCases.length > 0) {
      const sources = await makeSources(dataset.database);
      log(`restores, ${runs} interleaved runs (each into a fresh database, checked against the source afterwards):`);
      for (let run = 1; run <= runs; run++) {
        for (const entry of rotated(restoreCases, run)) samples.set(entry, [...(samples.get(entry) ?? []), await runCase(entry, `run ${run}`, dataset.database, sources, sourceFingerprint)]);
      }
    }

    const caseSamples: CaseSamples[] = [...samples].map(([entry, measurements]) => ({id: entry.id, label: entry.label, kind: entry.kind, ours: entry.ours, samples: measurements}));
    const summaries = summarize(caseSamples, dumpBytes);

    // Memory flatness: the same commands at other database sizes (those of them that ran here).
    const rssCases = ['synapse-gzip', 'synapse-zstd', 'synapse-restore-gzip', 'synapse-gzip-s3'];
    const rssBySize: RssBySize[] = [];
    const mainPeak = summaries.filter((summary) => rssCases.includes(summary.id)).map((summary) => summary.peakRssBytes);
    const otherDatasets: DatasetInfo[] = [];
    if (mainPeak.length > 0 && rssSizes.length > 0) {
      rssBySize.push({databaseMegabytes: size, peakRssBytes: Math.max(...mainPeak)});
      for (const extra of rssSizes) {
        const other = await ensureDataset(cluster, planDataset(extra), log);
        otherDatasets.push(other);
        log(`peak RSS at ${extra} MB (${other.database}):`);
        const otherFingerprint = await fingerprint(cluster, other.database);
        const sources = await makeSources(other.database);
        let peak = 0;
        for (const id of rssCases.filter((candidate) => summaries.some((summary) => summary.id === candidate))) {
          const entry = [...BACKUP_CASES, ...RESTORE_CASES].find((candidate) => candidate.id === id)!;
          peak = Math.max(peak, (await runCase(entry, `${extra} MB`, other.database, sources, otherFingerprint)).peakRssBytes);
        }
        rssBySize.push({databaseMegabytes: extra, peakRssBytes: peak});
      }
    }

    const levels = options['skip-levels'] ? undefined : await measureLevels(plainDump);

    // Main-thread CPU profiles of one gzip and one zstd backup: where the time of our own process goes.
    const profiles: Record<string, ProfileSummary> = {};
    if (options.profile) {
      for (const id of ['synapse-gzip', 'synapse-zstd']) {
        const directory = path.join(work, `profile-${id}`);
        await mkdir(directory);
        const spec = BACKUP_CASES.find((entry) => entry.id === id)!.command(context(directory, dataset.database, noSources));
        await measure({...spec, script: spec.script.replace('"$NODE_BIN"', `"$NODE_BIN" --cpu-prof --cpu-prof-dir="${directory}/prof"`)}, serverPid);
        profiles[id] = summarizeProfile(await readProfileIn(path.join(directory, 'prof')));
      }
    }

    const targets = evaluateTargets(summaries, rssBySize);
    await dropRestoreTargets(cluster);
    log('');
    log(formatTable(summaries));
    log('');
    log(formatTargets(targets));
    if (options.compare) {
      const earlier = JSON.parse(await readFile(options.compare, 'utf8')) as {summaries: CaseSummary[]; commit?: string; measuredAt?: string};
      log(`\n${formatComparison(summaries, earlier.summaries, `${earlier.commit?.slice(0, 10) ?? 'unknown commit'} at ${earlier.measuredAt ?? '?'}`)}`);
    }
    if (levels) log(`\nCompression levels on 1 MiB blocks sampled from this dump (one core, in-process):\n${formatLevels(levels)}`);
    for (const [id, profile] of Object.entries(profiles)) log(`\nCPU profile of one ${id} backup, ${formatProfile(profile)}`);

    const out = options.out ?? path.join(PROJECT, 'bench-results', `bench-${new Date().toISOString().replaceAll(':', '-')}.json`);
    await mkdir(path.dirname(out), {recursive: true});
    const commit = commitOf();
    const wal = options.suite === 'all' ? await walSuite(runs, work) : undefined;
    const document = {
      formatVersion: 1,
      measuredAt: new Date().toISOString(),
      commit,
      machine: {cores: availableParallelism(), cpu: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version},
      dataset: {...dataset, plainDumpBytes: dumpBytes},
      runs,
      summaries,
      targets,
      rssBySize,
      otherDatasets,
      levels,
      profiles,
      samples: caseSamples,
      ...(wal ? {wal} : {}),
    };
    await writeFile(out, `${JSON.stringify(document, null, 2)}\n`);
    log(`\nresults written to ${out}`);
  } finally {
    await stopAll();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
