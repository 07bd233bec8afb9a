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

export function formatDuration(milliseconds: number): string {
  return milliseconds < 60_000 ? `${(milliseconds / 1000).toFixed(1)} s` : `${Math.floor(milliseconds / 60_000)} min ${Math.round((milliseconds % 60_000) / 1000)} s`;
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
