import {readFileSync, statSync} from 'node:fs';
import path from 'node:path';
import {tmpdir} from 'node:os';

import {SynapseError} from '../errors/index.js';
import {DEFAULT_RETENTION_POLICY, type RetentionPolicy} from '../retention/index.js';
import {Secret} from '../secrets/index.js';
import {COMPRESSION_FORMATS, DEFAULT_COMPRESSION, type CompressionSettings} from '../pipeline/compression.js';
import type {CompressionAlgorithm} from '../naming/index.js';
import {DatabaseTarget, withoutSecrets} from '../postgres/database-target.js';
import {DEFAULT_STORAGE_TIMEOUT_MS} from '../storage/bounded-storage.js';
import {parseDuration} from './duration.js';
import {parseLocations, type LocationSpec} from './locations.js';

export type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_KDF_ITERATIONS = 600_000;
const MINIMUM_KEY_LENGTH = 32;

export interface EncryptionSettings {
  readonly key: Secret;
  readonly provider: string;
  readonly iterations: number;
}

/**
 * Settings that only some commands use. A command validates the groups it names; a bad value in
 * another group is a warning and its default, so that in an emergency a setting that only matters
 * to other commands (a bad BACKUP_COMPRESSION, say) never stops a restore.
 * - new-backups: compression, its level and the PBKDF2 iterations of new backups (backup run);
 * - retention: the retention counts (cleanup).
 */
export type SettingGroup = 'new-backups' | 'retention' | 'wal-archive';
export const ALL_SETTING_GROUPS: readonly SettingGroup[] = ['new-backups', 'retention', 'wal-archive'];

/** How `wal push` keeps up with a busy server (see WalArchiveSettings). */
export interface WalArchiveSettings {
  /**
   * WAL_PUSH_AHEAD (default 64, 0 to turn off): how many further files already waiting for the
   * archiver (`.ready`) one push archives with the one it was asked for, acknowledging each in the
   * spool once every location holds it, so that the archiver's next calls return at once.
   */
  readonly pushAhead: number;
  /** WAL_PUSH_PARALLEL (default 4): files archived at once, each compressed on all cores. */
  readonly parallel: number;
  /** WAL_SPOOL_DIR: where the acknowledgements go (default: pg_wal/synapse-backup-spool). */
  readonly spoolDirectory: string | undefined;
  /**
   * WAL_ARCHIVE_ACKNOWLEDGE (default all): when a push tells PostgreSQL a file is archived. `all`:
   * once every location holds it. `primary`: once the primary location (the first) holds it; the
   * others are written in the same push, and one that cannot take the file is a warning, left for
   * `backup sync` to catch up and for `status` to report as behind.
   */
  readonly acknowledge: WalAcknowledgement;
}

export type WalAcknowledgement = 'all' | 'primary';

export const DEFAULT_WAL_ARCHIVE_SETTINGS: WalArchiveSettings = {pushAhead: 64, parallel: 4, spoolDirectory: undefined, acknowledge: 'all'};

function walAcknowledgement(env: Readonly<Record<string, string | undefined>>): WalAcknowledgement {
  const value = env.WAL_ARCHIVE_ACKNOWLEDGE?.trim() || DEFAULT_WAL_ARCHIVE_SETTINGS.acknowledge;
  if (value !== 'all' && value !== 'primary') {
    throw new SynapseError('E_CONFIG', {
      message: `unable to use WAL_ARCHIVE_ACKNOWLEDGE '${value}': it is all or primary`,
      suggestion: 'Set WAL_ARCHIVE_ACKNOWLEDGE=all (the default: a file is archived once every location holds it) or WAL_ARCHIVE_ACKNOWLEDGE=primary (once the first location holds it; the others catch up through backup sync).',
    });
  }
  return value;
}

/** How `backup run --method physical` runs pg_basebackup. */
export interface PhysicalBackupSettings {
  /**
   * BACKUP_CHECKPOINT (default fast): `fast` asks the server for an immediate checkpoint, so the
   * backup starts at once; `spread` waits for a checkpoint spread over checkpoint_timeout ×
   * checkpoint_completion_target (minutes, doing nothing), which spares a busy server's disks.
   */
  readonly checkpoint: 'fast' | 'spread';
  /** BACKUP_WAL_WAIT_SECONDS (default 300): how long a finished base backup waits for its stop segment to arrive in the archive before it fails. */
  readonly walWaitMs: number;
  /**
   * BACKUP_DRILL_DIR (default the temporary directory): where `backup test-restore` of a physical
   * backup restores its scratch data directory; it needs room for one restored cluster.
   */
  readonly drillDirectory: string;
  /**
   * BACKUP_DRILL_TIMEOUT (default 24h): how long a drill may take; one still restoring, recovering
   * or running pg_amcheck then stops its server, removes its directory and fails: a drill run from
   * cron that waits for ever is never reported.
   */
  readonly drillTimeoutMs: number;
}

export const DEFAULT_PHYSICAL_BACKUP_SETTINGS: PhysicalBackupSettings = {checkpoint: 'fast', walWaitMs: 300_000, drillDirectory: tmpdir(), drillTimeoutMs: 24 * 3_600_000};

export const DEFAULT_PROGRESS_INTERVAL_MS = 10_000;

export interface Settings {
  /** The configuration environment (process environment over .env) less the secrets, for plugins. */
  readonly env: Env;
  /** Where to dump from and restore to; holds the password as a Secret. */
  readonly database: DatabaseTarget;
  /** The primary location's storage (BACKUP_STORAGE and BACKUP_DIR, or the first of BACKUP_LOCATIONS). */
  readonly storage: {readonly scheme: string; readonly location: string};
  /** Every location, the primary first (BACKUP_LOCATIONS; else the one of BACKUP_STORAGE and BACKUP_DIR). */
  readonly locations: readonly LocationSpec[];
  readonly encryption: EncryptionSettings | undefined;
  readonly compression: CompressionSettings;
  /**
   * Count every table's rows in pg_dump's snapshot for test restores to compare with
   * (BACKUP_FINGERPRINT, default on); the counts cost a second read of every table during the dump.
   */
  readonly fingerprint: boolean;
  readonly retention: RetentionPolicy;
  /** Each location's policy: `retention`, or BACKUP_RETENTION_<TYPE>_<LOCATION NAME> where set. */
  readonly locationRetention: Readonly<Record<string, RetentionPolicy>>;
  readonly pgBinDir: string | undefined;
  /** How often a running stage logs its progress when not on a terminal. */
  readonly progressIntervalMs: number;
  /** How long one storage operation may go without an answer (SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS). */
  readonly storageTimeoutMs: number;
  readonly walArchive: WalArchiveSettings;
  readonly physical: PhysicalBackupSettings;
  readonly warnings: readonly string[];
}

export interface EnvSources {
  /** The process environment. */
  readonly process: Env;
  /** Values read from a .env file; the process environment wins over them. */
  readonly dotenv: Env;
  readonly cwd: string;
}

function nonNegativeInteger(env: Env, name: string, fallback: number, minimum = 0): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < minimum || !Number.isSafeInteger(Number(raw))) {
    throw new SynapseError('E_CONFIG', {message: `unable to use ${name} '${raw}': expected a whole number${minimum > 0 ? ` of at least ${minimum}` : ''}`});
  }
  return Number(raw);
}

/**
 * A setting of a group this command does not use: its value when valid, else its default and a
 * warning, so that the mistake is seen without stopping this command.
 */
function leniently<T>(used: boolean, resolve: () => T, fallback: T, warnings: string[]): T {
  if (used) return resolve();
  try {
    return resolve();
  } catch (error) {
    if (!(error instanceof SynapseError)) throw error;
    warnings.push(`${error.message}. This command does not use it and goes on; fix it before the commands that do.`);
    return fallback;
  }
}

/**
 * A tuning setting every command uses (a bound, an interval): its value when valid, else its
 * default, said so in a warning rather than in silence.
 */
function withDefaultOnError<T>(resolve: () => T, fallback: T, described: string, warnings: string[]): T {
  try {
    return resolve();
  } catch (error) {
    if (!(error instanceof SynapseError)) throw error;
    warnings.push(`${error.message}; using the default (${described}) instead`);
    return fallback;
  }
}

function readKeyFile(file: string): Secret {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to read BACKUP_ENCRYPTION_KEY_FILE '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      suggestion: 'Point BACKUP_ENCRYPTION_KEY_FILE at a readable file that holds the key on its first line.',
    });
  }
  // The first line, as `openssl enc -pass file:` reads it, so the stock-tools recipe uses the same key.
  const newline = text.indexOf('\n');
  const key = newline === -1 ? text : text.slice(0, newline);
  if (key === '') throw new SynapseError('E_CONFIG', {message: `unable to use BACKUP_ENCRYPTION_KEY_FILE '${file}': its first line is empty`, suggestion: 'Put the key on the first line of the file.'});
  if (key.endsWith('\r')) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to use BACKUP_ENCRYPTION_KEY_FILE '${file}': its first line ends with a carriage return (Windows line ending), which openssl would read as part of the key`,
      suggestion: 'Convert the file to Unix line endings (dos2unix, or sed -i "s/\\r$//").',
    });
  }
  return new Secret(key);
}

function resolveEncryption(sources: EnvSources, env: Env, warnings: string[], writesBackups: boolean): EncryptionSettings | undefined {
  const inline = env.BACKUP_ENCRYPTION_KEY;
  const file = env.BACKUP_ENCRYPTION_KEY_FILE?.trim();
  // Set but empty is a mistake (a failed `$(cat missing-file)`), never a request for no encryption.
  for (const [name, value] of [['BACKUP_ENCRYPTION_KEY', inline], ['BACKUP_ENCRYPTION_KEY_FILE', file]] as const) {
    if (value !== undefined && value.trim() === '') {
      throw new SynapseError('E_CONFIG', {
        message: `unable to use ${name}: it is set but empty`,
        suggestion: `Give ${name} a value, or unset it (unset ${name}) to run without it; backups are never written unencrypted because a key came out empty.`,
      });
    }
  }
  if (inline && file) {
    throw new SynapseError('E_CONFIG', {
      message: 'unable to choose an encryption key: both BACKUP_ENCRYPTION_KEY and BACKUP_ENCRYPTION_KEY_FILE are set',
      suggestion: 'Set only one of them.',
    });
  }
  const iterations = leniently(writesBackups, () => nonNegativeInteger(env, 'BACKUP_ENCRYPTION_ITERATIONS', DEFAULT_KDF_ITERATIONS, 1), DEFAULT_KDF_ITERATIONS, warnings);
  const provider = env.BACKUP_ENCRYPTION_PROVIDER?.trim() || 'aes-256-cbc';
  if (!inline && !file) {
    if (writesBackups) warnings.push('Backups are written UNENCRYPTED: set BACKUP_ENCRYPTION_KEY or BACKUP_ENCRYPTION_KEY_FILE to encrypt them.');
    return undefined;
  }
  let key: Secret;
  if (file) {
    const keyPath = path.resolve(sources.cwd, file);
    key = readKeyFile(keyPath);
    try {
      if ((statSync(keyPath).mode & 0o077) !== 0) warnings.push(`The key file '${keyPath}' is readable by other users; chmod 600 it.`);
    } catch {
      // readKeyFile already proved the file readable; a failing stat only loses the warning.
    }
  } else {
    key = new Secret(inline!);
    if (sources.process.BACKUP_ENCRYPTION_KEY === undefined && sources.dotenv.BACKUP_ENCRYPTION_KEY !== undefined) {
      warnings.push('The encryption key comes from a .env file: keep that file out of version control and away from the backups, or use BACKUP_ENCRYPTION_KEY_FILE.');
    }
  }
  if (key.length < MINIMUM_KEY_LENGTH) {
    warnings.push(`The encryption key is shorter than ${MINIMUM_KEY_LENGTH} characters; use a long random one (e.g. \`openssl rand -base64 48\`).`);
  }
  if (writesBackups && iterations < 100_000) warnings.push(`BACKUP_ENCRYPTION_ITERATIONS=${iterations} is low for PBKDF2-SHA256; ${DEFAULT_KDF_ITERATIONS} is the default.`);
  return {key, provider, iterations};
}

function resolveCompression(env: Env): CompressionSettings {
  const name = env.BACKUP_COMPRESSION?.trim().toLowerCase() || 'gzip';
  if (!Object.hasOwn(COMPRESSION_FORMATS, name)) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to use BACKUP_COMPRESSION '${name}': supported are ${Object.keys(COMPRESSION_FORMATS).join(' and ')}`,
      suggestion: 'Set BACKUP_COMPRESSION=gzip (the default, readable everywhere) or zstd (several times faster).',
    });
  }
  const algorithm = name as CompressionAlgorithm;
  const format = COMPRESSION_FORMATS[algorithm];
  const missing = format.unavailable();
  if (missing) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to use BACKUP_COMPRESSION '${algorithm}': ${missing}`,
      suggestion: 'Run synapse-backup through its launcher bin/synapse-backup, which uses the Node.js that `npm install` brings, or use BACKUP_COMPRESSION=gzip.',
    });
  }
  const {min, max} = format.levels;
  const level = nonNegativeInteger(env, 'BACKUP_COMPRESSION_LEVEL', format.levels.default);
  if (level < min || level > max) {
    throw new SynapseError('E_CONFIG', {message: `unable to use BACKUP_COMPRESSION_LEVEL '${level}': ${algorithm} levels run from ${min} to ${max}`});
  }
  return {algorithm, level};
}

function resolveSwitch(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['on', 'true', 'yes', '1'].includes(raw)) return true;
  if (['off', 'false', 'no', '0'].includes(raw)) return false;
  throw new SynapseError('E_CONFIG', {message: `unable to use ${name} '${env[name]}': expected on or off`});
}

/**
 * Reads the configuration a command needs; every bad value of what it uses is an E_CONFIG error
 * naming the variable. `uses` names the groups it validates (all of them by default).
 */
export function resolveSettings(sources: EnvSources, options: {uses?: readonly SettingGroup[]} = {}): Settings {
  const env: Env = {...sources.dotenv, ...sources.process};
  const uses = new Set(options.uses ?? ALL_SETTING_GROUPS);
  const warnings: string[] = [];
  const encryption = resolveEncryption(sources, env, warnings, uses.has('new-backups'));
  const compression = leniently(uses.has('new-backups'), () => resolveCompression(env), DEFAULT_COMPRESSION, warnings);
  const fingerprint = leniently(uses.has('new-backups'), () => resolveSwitch(env, 'BACKUP_FINGERPRINT', true), true, warnings);
  const retention = leniently(
    uses.has('retention'),
    () => ({
      hourly: nonNegativeInteger(env, 'BACKUP_RETENTION_HOURLY', DEFAULT_RETENTION_POLICY.hourly),
      daily: nonNegativeInteger(env, 'BACKUP_RETENTION_DAILY', DEFAULT_RETENTION_POLICY.daily),
      monthly: nonNegativeInteger(env, 'BACKUP_RETENTION_MONTHLY', DEFAULT_RETENTION_POLICY.monthly),
    }),
    DEFAULT_RETENTION_POLICY,
    warnings,
  );
  const locations = parseLocations(env.BACKUP_LOCATIONS, {scheme: env.BACKUP_STORAGE?.trim() || 'local', location: path.resolve(sources.cwd, env.BACKUP_DIR?.trim() || './backups')}, sources.cwd);
  // A location may keep more or fewer: BACKUP_RETENTION_MONTHLY_OFFSITE=36 for the location named offsite.
  const locationRetention = leniently(
    uses.has('retention'),
    () =>
      Object.fromEntries(
        locations.map((location) => {
          const suffix = location.name.toUpperCase().replaceAll('-', '_');
          return [
            location.name,
            {
              hourly: nonNegativeInteger(env, `BACKUP_RETENTION_HOURLY_${suffix}`, retention.hourly),
              daily: nonNegativeInteger(env, `BACKUP_RETENTION_DAILY_${suffix}`, retention.daily),
              monthly: nonNegativeInteger(env, `BACKUP_RETENTION_MONTHLY_${suffix}`, retention.monthly),
            },
          ];
        }),
      ),
    Object.fromEntries(locations.map((location) => [location.name, retention])),
    warnings,
  );
  // Only what the display shows depends on it: never a reason to stop, always a reason to say so.
  const progressIntervalMs = withDefaultOnError(() => nonNegativeInteger(env, 'SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS', DEFAULT_PROGRESS_INTERVAL_MS), DEFAULT_PROGRESS_INTERVAL_MS, `${DEFAULT_PROGRESS_INTERVAL_MS} ms`, warnings);
  // A bound on a hung storage, not on the data: a bad value must not stop a restore either.
  const storageTimeoutMs = withDefaultOnError(() => nonNegativeInteger(env, 'SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS', DEFAULT_STORAGE_TIMEOUT_MS, 1), DEFAULT_STORAGE_TIMEOUT_MS, `${DEFAULT_STORAGE_TIMEOUT_MS} ms`, warnings);
  const walArchive = leniently(
    uses.has('wal-archive'),
    () => ({
      pushAhead: nonNegativeInteger(env, 'WAL_PUSH_AHEAD', DEFAULT_WAL_ARCHIVE_SETTINGS.pushAhead),
      parallel: nonNegativeInteger(env, 'WAL_PUSH_PARALLEL', DEFAULT_WAL_ARCHIVE_SETTINGS.parallel, 1),
      spoolDirectory: env.WAL_SPOOL_DIR?.trim() ? path.resolve(sources.cwd, env.WAL_SPOOL_DIR.trim()) : undefined,
      acknowledge: walAcknowledgement(env),
    }),
    DEFAULT_WAL_ARCHIVE_SETTINGS,
    warnings,
  );
  const physical = leniently(
    uses.has('new-backups'),
    (): PhysicalBackupSettings => {
      const checkpoint = env.BACKUP_CHECKPOINT?.trim() || DEFAULT_PHYSICAL_BACKUP_SETTINGS.checkpoint;
      if (checkpoint !== 'fast' && checkpoint !== 'spread') {
        throw new SynapseError('E_CONFIG', {message: `unable to use BACKUP_CHECKPOINT '${checkpoint}': it is fast or spread`, suggestion: 'Set BACKUP_CHECKPOINT=fast (the default) or BACKUP_CHECKPOINT=spread.'});
      }
      const drillDirectory = env.BACKUP_DRILL_DIR?.trim() || tmpdir();
      if (!path.isAbsolute(drillDirectory)) throw new SynapseError('E_CONFIG', {message: `unable to use BACKUP_DRILL_DIR '${drillDirectory}': it must be an absolute path`, suggestion: 'Set BACKUP_DRILL_DIR to an absolute directory with room for one restored cluster, such as /var/tmp.'});
      const drillTimeout = env.BACKUP_DRILL_TIMEOUT?.trim();
      const drillTimeoutMs = drillTimeout ? parseDuration('BACKUP_DRILL_TIMEOUT', drillTimeout) : DEFAULT_PHYSICAL_BACKUP_SETTINGS.drillTimeoutMs;
      return {checkpoint, walWaitMs: nonNegativeInteger(env, 'BACKUP_WAL_WAIT_SECONDS', DEFAULT_PHYSICAL_BACKUP_SETTINGS.walWaitMs / 1000) * 1000, drillDirectory, drillTimeoutMs};
    },
    DEFAULT_PHYSICAL_BACKUP_SETTINGS,
    warnings,
  );
  return {
    // Storage and encryption plugins get neither our secrets nor the notification sinks' credentials.
    env: Object.fromEntries(Object.entries(withoutSecrets(env)).filter(([name]) => !name.startsWith('NOTIFY_'))),
    database: DatabaseTarget.fromEnvironment(env),
    storage: {scheme: locations[0]!.scheme, location: locations[0]!.location},
    locations,
    encryption,
    compression,
    fingerprint,
    retention,
    locationRetention,
    pgBinDir: env.PG_BIN_DIR?.trim() || undefined,
    progressIntervalMs,
    storageTimeoutMs,
    walArchive,
    physical,
    warnings,
  };
}
