import {parseDuration} from '../config/duration.js';
import {SynapseError} from '../errors/index.js';
import {BACKUP_TYPES, type BackupType} from '../naming/index.js';
import {DEFAULT_STATUS_POLICY, type StatusPolicy} from './evaluate-status.js';

type Env = Readonly<Record<string, string | undefined>>;

/** How long a standing problem waits before it is sent again (NOTIFY_REPEAT_INTERVAL). */
export const DEFAULT_REPEAT_INTERVAL_MS = 24 * 3_600_000;

const MAX_AGE_VARIABLE: Record<BackupType, string> = {hourly: 'BACKUP_ALERT_MAX_AGE_HOURLY', daily: 'BACKUP_ALERT_MAX_AGE_DAILY', monthly: 'BACKUP_ALERT_MAX_AGE_MONTHLY'};

function set(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw === undefined || raw === '' ? undefined : raw;
}

function number(env: Env, name: string, fallback: number, valid: (value: number) => boolean, expected: string): number {
  const raw = set(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !valid(value)) throw new SynapseError('E_CONFIG', {message: `unable to use ${name} '${raw}': expected ${expected}`});
  return value;
}

function optionalDuration(env: Env, name: string): number | undefined {
  const raw = set(env, name);
  return raw === undefined ? undefined : parseDuration(name, raw, 'none');
}

/** The thresholds of `status`, from BACKUP_ALERT_* (durations such as 90m, 26h, 32d). */
export function statusPolicyFrom(env: Env): StatusPolicy {
  const typesRaw = set(env, 'BACKUP_ALERT_TYPES');
  let types: BackupType[] | undefined;
  if (typesRaw !== undefined) {
    types = typesRaw.split(',').map((type) => type.trim().toLowerCase()).filter(Boolean) as BackupType[];
    const unknown = types.filter((type) => !BACKUP_TYPES.includes(type));
    if (unknown.length > 0 || types.length === 0) {
      throw new SynapseError('E_CONFIG', {message: `unable to use BACKUP_ALERT_TYPES '${typesRaw}': expected a comma-separated list of ${BACKUP_TYPES.join(', ')}`});
    }
  }
  const maxAgeMs = Object.fromEntries(
    BACKUP_TYPES.map((type) => {
      const raw = set(env, MAX_AGE_VARIABLE[type]);
      return [type, raw === undefined ? DEFAULT_STATUS_POLICY.maxAgeMs[type] : parseDuration(MAX_AGE_VARIABLE[type], raw, 'none')];
    }),
  ) as Record<BackupType, number>;
  return {
    types,
    maxAgeMs,
    minFreePercent: number(env, 'BACKUP_ALERT_MIN_FREE_PERCENT', DEFAULT_STATUS_POLICY.minFreePercent, (value) => value >= 0 && value <= 100, 'a percentage from 0 to 100'),
    minSizeRatio: number(env, 'BACKUP_ALERT_MIN_SIZE_RATIO', DEFAULT_STATUS_POLICY.minSizeRatio, (value) => value >= 0 && value <= 1, 'a fraction from 0 to 1, such as 0.5'),
    sizeWindow: DEFAULT_STATUS_POLICY.sizeWindow,
    archive: {
      warnAfterMs: optionalDuration(env, 'BACKUP_ALERT_WAL_AGE_WARNING'),
      criticalAfterMs: optionalDuration(env, 'BACKUP_ALERT_WAL_AGE_CRITICAL'),
    },
    restoreTestMaxAgeMs: optionalDuration(env, 'BACKUP_ALERT_RESTORE_TEST_AGE') ?? DEFAULT_STATUS_POLICY.restoreTestMaxAgeMs,
  };
}

export function repeatIntervalFrom(env: Env): number {
  const raw = set(env, 'NOTIFY_REPEAT_INTERVAL');
  return raw === undefined ? DEFAULT_REPEAT_INTERVAL_MS : parseDuration('NOTIFY_REPEAT_INTERVAL', raw, 's');
}
