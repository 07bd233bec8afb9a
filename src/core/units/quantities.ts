const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

/** Decimal units, two decimals: `2.45 MB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.round(bytes)} B` : `${value.toFixed(2)} ${UNITS[unit]}`;
}

export function formatRate(bytes: number, milliseconds: number): string {
  return milliseconds > 0 ? `${formatBytes((bytes * 1000) / milliseconds)}/s` : '';
}

/**
 * How long something took: tenths of a second under a minute (`4.2 s`), then minutes and seconds
 * (`3 min 5 s`), then hours (`24 h 0 min 0 s`, not `1440 min 0 s`). Rounded to the second first, so
 * that no part reads 60.
 */
export function formatDuration(milliseconds: number): string {
  if (milliseconds < 59_950) return `${(milliseconds / 1000).toFixed(1)} s`;
  const seconds = Math.round(milliseconds / 1000);
  const [hours, minutes, rest] = [Math.floor(seconds / 3600), Math.floor((seconds % 3600) / 60), seconds % 60];
  return hours > 0 ? `${hours} h ${minutes} min ${rest} s` : `${minutes} min ${rest} s`;
}

/** An age or a maximum age as people say it: seconds and minutes up to 2 h, hours up to 2 days, then days. */
export function formatAge(ms: number | undefined): string {
  if (ms === undefined) return '-';
  const trim = (value: number): string => value.toFixed(1).replace(/\.0$/, '');
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 2 * 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 48 * 3_600_000) return `${trim(ms / 3_600_000)} h`;
  return `${trim(ms / 86_400_000)} d`;
}
