import {SynapseError} from '../errors/index.js';

const UNIT_MS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000};

/**
 * A duration as people write it in a config file: `10s`, `500ms`, `90m`, `2h`, `1d`, or a bare
 * number in `bareUnit` (`none`: a bare number is refused). Returns milliseconds; throws E_CONFIG naming the variable otherwise.
 */
export function parseDuration(name: string, raw: string, bareUnit: 'ms' | 's' | 'none' = 's'): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?$/.exec(raw.trim());
  if (match && match[2] === undefined && bareUnit === 'none') {
    // `BACKUP_ALERT_MAX_AGE_DAILY=26` means hours to whoever wrote it and seconds to a parser: refuse to guess.
    throw new SynapseError('E_CONFIG', {message: `unable to use ${name} '${raw}': a bare number has no unit; write it with one, such as ${raw.trim()}h, ${raw.trim()}m or ${raw.trim()}d`});
  }
  const milliseconds = match ? Number(match[1]) * UNIT_MS[match[2] ?? bareUnit]! : Number.NaN;
  if (!Number.isFinite(milliseconds) || milliseconds <= 0 || !Number.isSafeInteger(Math.round(milliseconds))) {
    throw new SynapseError('E_CONFIG', {message: `unable to use ${name} '${raw}': expected a duration such as 10s, 500ms, 90m or 2h`});
  }
  return Math.round(milliseconds);
}
