import {existsSync} from 'node:fs';
import path from 'node:path';

import type {CommandSpec} from './measure.js';

/** What every case needs to build its command line; one run's files live under `runDirectory`. */
export interface CaseContext {
  readonly pgBin: string;
  readonly sourceUrl: string;
  readonly restoreUrl: string;
  readonly node: string;
  readonly cli: string;
  readonly key: string;
  readonly runDirectory: string;
  /** A plain dump of the source and its `gzip -6`, made once before the restore cases. */
  readonly plainDump: string;
  readonly plainDumpGz: string;
  /** Backup directories holding one synapse-backup backup each, made once before the restore cases. */
  readonly backupSources: Readonly<Record<'gzip' | 'zstd', {directory: string; name: string}>>;
  /** A real S3 server on loopback (Ceph radosgw), started when an S3 case runs. */
  readonly s3: S3Target | undefined;
}

export interface S3Target {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly bucket: string;
}

/** The S3 settings of one run of a case: a prefix of its own, so that runs never see each other's backups. */
export function s3Environment(s3: S3Target, runDirectory: string): Record<string, string> {
  return {
    BACKUP_STORAGE: 's3',
    BACKUP_S3_BUCKET: s3.bucket,
    BACKUP_S3_ENDPOINT: s3.endpoint,
    BACKUP_S3_PREFIX: `bench-${path.basename(runDirectory)}/`,
    AWS_ACCESS_KEY_ID: s3.accessKey,
    AWS_SECRET_ACCESS_KEY: s3.secretKey,
  };
}

export interface BenchCase {
  readonly id: string;
  readonly label: string;
  /** 'verify' cases read a backup back without a database; they run with the restore cases, on the same backups. */
  readonly kind: 'backup' | 'restore' | 'verify';
  /** Our CLI, as opposed to a baseline. */
  readonly ours: boolean;
  /** Why the case cannot run on this machine, if it cannot. */
  readonly unavailable?: () => string | undefined;
  readonly command: (context: CaseContext) => CommandSpec;
}

// The same format our backups use, so the shell pipeline does the same work: `openssl enc` with
// PBKDF2-SHA256 at our default 600000 iterations.
const OPENSSL_ENCRYPT = 'openssl enc -aes-256-cbc -pbkdf2 -md sha256 -iter 600000 -salt -pass env:BENCH_KEY';
const PSQL = '"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1';

function baseEnv(context: CaseContext): Record<string, string> {
  return {
    PATH: `${context.pgBin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: process.env.HOME ?? '/root',
    PG_BIN: context.pgBin,
    SOURCE_URL: context.sourceUrl,
    RESTORE_URL: context.restoreUrl,
    RUN_DIR: context.runDirectory,
    BENCH_KEY: context.key,
    NODE_BIN: context.node,
    CLI: context.cli,
  };
}

function shell(script: string, extra: Record<string, string> = {}) {
  return (context: CaseContext): CommandSpec => ({script, env: {...baseEnv(context), ...extra}, cwd: context.runDirectory});
}

/** Our CLI reports a failure as JSON on stdout; a failed run shows it, where /dev/null would have hidden it. */
function ourCli(args: string): string {
  return `"$NODE_BIN" "$CLI" ${args} > "$RUN_DIR/synapse-output.json" || { status=$?; cat "$RUN_DIR/synapse-output.json" >&2; exit $status; }`;
}

function onPath(tool: string): () => string | undefined {
  return () => ((process.env.PATH ?? '').split(':').some((directory) => existsSync(path.join(directory, tool))) ? undefined : `${tool} is not installed`);
}

function synapseBackup(compression: 'gzip' | 'zstd', encrypted: boolean) {
  return (context: CaseContext): CommandSpec => ({
    script: ourCli('backup run --json'),
    env: {
      ...baseEnv(context),
      DATABASE_URL: context.sourceUrl,
      PG_BIN_DIR: context.pgBin,
      BACKUP_DIR: path.join(context.runDirectory, 'synapse'),
      BACKUP_COMPRESSION: compression,
      ...(encrypted ? {BACKUP_ENCRYPTION_KEY: context.key} : {}),
    },
    cwd: context.runDirectory,
  });
}

/** A backup straight into a bucket, beside the same backup into a local directory. */
function synapseBackupToS3(context: CaseContext): CommandSpec {
  if (!context.s3) throw new Error('the S3 case needs the S3 server the harness starts');
  const local = synapseBackup('gzip', true)(context);
  return {...local, env: {...local.env, ...s3Environment(context.s3, context.runDirectory)}};
}

/** A backup to two locations: the primary, then a copy of the same bytes (what `backup run` does with BACKUP_LOCATIONS). */
function synapseBackupReplicated(secondary: 'local' | 's3') {
  return (context: CaseContext): CommandSpec => {
    const local = synapseBackup('gzip', true)(context);
    const primary = `local:${path.join(context.runDirectory, 'synapse')}`;
    if (secondary === 'local') return {...local, env: {...local.env, BACKUP_LOCATIONS: `${primary},second=local:${path.join(context.runDirectory, 'second')}`}};
    if (!context.s3) throw new Error('the S3 case needs the S3 server the harness starts');
    const s3 = s3Environment(context.s3, context.runDirectory);
    const url = `s3://${s3.BACKUP_S3_BUCKET}/${s3.BACKUP_S3_PREFIX}?endpoint=${encodeURIComponent(s3.BACKUP_S3_ENDPOINT!)}&force-path-style=true`;
    return {...local, env: {...local.env, BACKUP_LOCATIONS: `${primary},offsite=${url}`, AWS_ACCESS_KEY_ID: s3.AWS_ACCESS_KEY_ID!, AWS_SECRET_ACCESS_KEY: s3.AWS_SECRET_ACCESS_KEY!}};
  };
}

/** How fast the slow location of the fan-out cases takes bytes: an 8 Mbit/s uplink, slower than the dump writes. */
const SLOW_LOCATION_BYTES_PER_SECOND = 1024 * 1024;

function synapseRestore(compression: 'gzip' | 'zstd') {
  return (context: CaseContext): CommandSpec => {
    const source = context.backupSources[compression];
    return {
      script: ourCli(`backup restore ${source.name} --yes --allow-other-database --json`),
      env: {...baseEnv(context), DATABASE_URL: context.restoreUrl, PG_BIN_DIR: context.pgBin, BACKUP_DIR: source.directory, BACKUP_ENCRYPTION_KEY: context.key},
      cwd: context.runDirectory,
    };
  };
}

function synapseVerify(compression: 'gzip' | 'zstd') {
  return (context: CaseContext): CommandSpec => {
    const source = context.backupSources[compression];
    return {
      script: ourCli(`backup verify ${source.name} --json`),
      env: {...baseEnv(context), BACKUP_DIR: source.directory, BACKUP_ENCRYPTION_KEY: context.key},
      cwd: context.runDirectory,
    };
  };
}

/** What a verify does by hand: decrypt, decompress to the end (checking gzip's CRC), hash the stored bytes. */
function shellDecode(compression: 'gzip' | 'zstd') {
  const decompress = compression === 'gzip' ? 'gunzip -c' : 'zstd -d -q -c';
  return (context: CaseContext): CommandSpec => {
    const source = context.backupSources[compression];
    const file = path.join(source.directory, source.name);
    return shell(`sha256sum "${file}" > /dev/null & openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter 600000 -pass env:BENCH_KEY -in "${file}" | ${decompress} > /dev/null && wait $!`)(context);
  };
}

export const BACKUP_CASES: readonly BenchCase[] = [
  {id: 'pg_dump-devnull', label: 'pg_dump > /dev/null', kind: 'backup', ours: false, command: shell('"$PG_BIN/pg_dump" -d "$SOURCE_URL" > /dev/null')},
  {
    id: 'shell-gzip',
    label: 'pg_dump | gzip -6 | openssl; sha256sum',
    kind: 'backup',
    ours: false,
    command: shell(`"$PG_BIN/pg_dump" -d "$SOURCE_URL" | gzip -6 | ${OPENSSL_ENCRYPT} > "$RUN_DIR/shell.sql.gz.enc" && sha256sum "$RUN_DIR/shell.sql.gz.enc" > /dev/null`),
  },
  {
    id: 'shell-zstd',
    label: 'pg_dump | zstd -3 | openssl; sha256sum',
    kind: 'backup',
    ours: false,
    unavailable: onPath('zstd'),
    command: shell(`"$PG_BIN/pg_dump" -d "$SOURCE_URL" | zstd -3 -q -c | ${OPENSSL_ENCRYPT} > "$RUN_DIR/shell.sql.zst.enc" && sha256sum "$RUN_DIR/shell.sql.zst.enc" > /dev/null`),
  },
  {id: 'pg_dump-custom', label: 'pg_dump -Fc', kind: 'backup', ours: false, command: shell('"$PG_BIN/pg_dump" -Fc -d "$SOURCE_URL" -f "$RUN_DIR/custom.dump"')},
  {id: 'synapse-gzip', label: 'synapse-backup gzip, encrypted', kind: 'backup', ours: true, command: synapseBackup('gzip', true)},
  {id: 'synapse-gzip-plain', label: 'synapse-backup gzip, not encrypted', kind: 'backup', ours: true, command: synapseBackup('gzip', false)},
  {id: 'synapse-zstd', label: 'synapse-backup zstd, encrypted', kind: 'backup', ours: true, command: synapseBackup('zstd', true)},
  {id: 'synapse-zstd-plain', label: 'synapse-backup zstd, not encrypted', kind: 'backup', ours: true, command: synapseBackup('zstd', false)},
  {id: 'synapse-gzip-s3', label: 'synapse-backup gzip, encrypted, to S3 (radosgw)', kind: 'backup', ours: true, unavailable: onPath('radosgw'), command: synapseBackupToS3},
  // Replication, and the two shapes it could take (see the README's replication section).
  {id: 'synapse-gzip-2-locations', label: 'synapse-backup gzip, encrypted, to 2 local locations (dump, then copy)', kind: 'backup', ours: true, command: synapseBackupReplicated('local')},
  {id: 'synapse-gzip-local-s3', label: 'synapse-backup gzip, encrypted, to local + S3 (radosgw) (dump, then copy)', kind: 'backup', ours: true, unavailable: onPath('radosgw'), command: synapseBackupReplicated('s3')},
  {
    id: 'shell-fanout-2',
    label: 'pg_dump | gzip -6 | openssl | tee: fanned out to 2 files',
    kind: 'backup',
    ours: false,
    command: shell(`"$PG_BIN/pg_dump" -d "$SOURCE_URL" | gzip -6 | ${OPENSSL_ENCRYPT} | tee "$RUN_DIR/second.sql.gz.enc" > "$RUN_DIR/shell.sql.gz.enc" && sha256sum "$RUN_DIR/shell.sql.gz.enc" > /dev/null`),
  },
  {
    id: 'shell-fanout-slow',
    label: 'the same, fanned out to 2, one at 1 MiB/s: the dump waits for it',
    kind: 'backup',
    ours: false,
    command: shell(`"$PG_BIN/pg_dump" -d "$SOURCE_URL" | gzip -6 | ${OPENSSL_ENCRYPT} | tee >("$NODE_BIN" "$THROTTLE" ${SLOW_LOCATION_BYTES_PER_SECOND} > "$RUN_DIR/second.sql.gz.enc") > "$RUN_DIR/shell.sql.gz.enc" && sha256sum "$RUN_DIR/shell.sql.gz.enc" > /dev/null`, {THROTTLE: path.join(path.dirname(new URL(import.meta.url).pathname), 'throttle.mjs')}),
  },
  {
    id: 'shell-then-copy-slow',
    label: 'the same to 1 file, then copied at 1 MiB/s to the second: the dump does not wait',
    kind: 'backup',
    ours: false,
    command: shell(`"$PG_BIN/pg_dump" -d "$SOURCE_URL" | gzip -6 | ${OPENSSL_ENCRYPT} > "$RUN_DIR/shell.sql.gz.enc" && date +%s%N > "$RUN_DIR/primary-done" && "$NODE_BIN" "$THROTTLE" ${SLOW_LOCATION_BYTES_PER_SECOND} < "$RUN_DIR/shell.sql.gz.enc" > "$RUN_DIR/second.sql.gz.enc"`, {THROTTLE: path.join(path.dirname(new URL(import.meta.url).pathname), 'throttle.mjs')}),
  },
];

export const RESTORE_CASES: readonly BenchCase[] = [
  {id: 'psql-file', label: 'psql -f plain.sql', kind: 'restore', ours: false, command: (context) => shell(`${PSQL} -d "$RESTORE_URL" -f "${context.plainDump}" > /dev/null`)(context)},
  {
    id: 'shell-gunzip',
    label: 'gunzip -c | psql',
    kind: 'restore',
    ours: false,
    command: (context) => shell(`gunzip -c "${context.plainDumpGz}" | ${PSQL} -d "$RESTORE_URL" > /dev/null`)(context),
  },
  {id: 'synapse-restore-gzip', label: 'synapse-backup restore (gzip, encrypted)', kind: 'restore', ours: true, command: synapseRestore('gzip')},
  {id: 'synapse-restore-zstd', label: 'synapse-backup restore (zstd, encrypted)', kind: 'restore', ours: true, command: synapseRestore('zstd')},
  {id: 'shell-decode-gzip', label: 'openssl -d | gunzip > /dev/null; sha256sum', kind: 'verify', ours: false, command: shellDecode('gzip')},
  {id: 'shell-decode-zstd', label: 'openssl -d | zstd -d > /dev/null; sha256sum', kind: 'verify', ours: false, unavailable: onPath('zstd'), command: shellDecode('zstd')},
  {id: 'synapse-verify-gzip', label: 'synapse-backup verify (gzip, encrypted)', kind: 'verify', ours: true, command: synapseVerify('gzip')},
  {id: 'synapse-verify-zstd', label: 'synapse-backup verify (zstd, encrypted)', kind: 'verify', ours: true, command: synapseVerify('zstd')},
];
