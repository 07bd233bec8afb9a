import type {ReplicatedStatusReport} from '../../core/services/index.js';
import type {StatusReport} from '../../core/status/index.js';
import {formatAge, formatBytes, formatDuration} from '../../core/units/index.js';

const SPARKS = '▁▂▃▄▅▆▇█';

/** A sparkline of `values`, scaled between their minimum and maximum. */
export function sparkline(values: readonly number[]): string {
  if (values.length === 0) return '';
  const low = Math.min(...values);
  const high = Math.max(...values);
  return values.map((value) => SPARKS[high === low ? SPARKS.length - 1 : Math.round(((value - low) / (high - low)) * (SPARKS.length - 1))]).join('');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ').trimEnd());
}

/**
 * The verdict first (as Nagios shows a plugin's first line), then per database and type the newest
 * good backup with its age, size, duration and trend, the backup location's free space, the
 * journal's failures and last successes, and each problem.
 */
export function formatStatusReport(report: StatusReport, options: {sparklines: boolean}): string {
  const headline = report.problems.length === 0 ? 'all backups current' : report.problems.map((problem) => problem.message).join('; ');
  const lines = [`${report.level.toUpperCase()}: ${headline}`, ''];
  const trend = (values: readonly number[], format: (value: number) => string): string =>
    options.sparklines ? sparkline(values) : values.slice(-4).map(format).join(' ');
  const rows = [['DATABASE', 'TYPE', 'NEWEST GOOD BACKUP', 'AGE', 'MAX AGE', 'SIZE', 'DURATION', 'SIZE TREND', 'DURATION TREND', 'STATE']];
  for (const type of report.types) {
    rows.push([
      type.database,
      type.type,
      type.newest?.name ?? 'none',
      formatAge(type.ageMs),
      formatAge(type.maxAgeMs),
      type.newest ? formatBytes(type.newest.storedBytes) : '-',
      type.newest ? formatDuration(type.newest.durationMs) : '-',
      trend(type.trend.storedBytes, formatBytes) || '-',
      trend(type.trend.durationsMs, formatDuration) || '-',
      type.overdue ? 'OVERDUE' : type.sizeDrop ? 'SIZE DROP' : 'ok',
    ]);
  }
  if (report.types.length === 0) lines.push('No backup types to check: the storage holds no backups of this database (set BACKUP_ALERT_TYPES to require some).');
  else lines.push(...table(rows));
  for (const type of report.types) {
    if (type.newest?.retainedUntil) lines.push(`Object Lock: the newest ${type.type} backup of '${type.database}' cannot be deleted before ${new Date(type.newest.retainedUntil).toISOString()}`);
  }
  const {locations} = report as Partial<ReplicatedStatusReport>;
  if (locations) {
    const locationRows = [['LOCATION', 'DATABASE', 'TYPE', 'NEWEST GOOD BACKUP', 'BEHIND', 'MISSING', 'LAST SYNC']];
    for (const location of locations) {
      if (!location.readable) locationRows.push([location.name, '-', '-', `UNREADABLE: ${location.error ?? ''}`, '-', '-', '-']);
      for (const type of location.types) locationRows.push([location.name, type.database, type.type, type.newest ?? 'none', String(type.behind), String(location.missing), location.lastSync?.finishedAt ?? 'never']);
    }
    lines.push('', ...table(locationRows));
    for (const location of locations) {
      const {wal} = location;
      if (!wal) continue;
      lines.push(wal.error !== undefined ? `WAL archive at location '${location.name}': UNREADABLE: ${wal.error}` : `WAL archive at location '${location.name}': newest authentic segment ${wal.newest ?? 'none'}, ${wal.missing} archived files missing that another location holds`);
    }
  }
  const {storage} = report;
  lines.push(
    '',
    storage.freeRatio === undefined
      ? `Storage ${storage.location}: free space unknown (the backend cannot tell)`
      : `Storage ${storage.location}: ${formatBytes(storage.freeBytes!)} free of ${formatBytes(storage.totalBytes!)} (${(storage.freeRatio * 100).toFixed(1)}%)`,
  );
  const {archive} = report;
  if (archive) {
    const server = 'unavailable' in archive.server ? `server not asked (${archive.server.unavailable})` : `server: last archived ${archive.server.lastArchivedWal ?? 'none'}, ${archive.server.pendingSegments} waiting${archive.server.readyFiles === undefined ? '' : ` (${archive.server.readyFiles} .ready files in archive_status)`}, ${archive.server.failedCount} failures`;
    lines.push(
      archive.newest
        ? `WAL archive ${archive.location}: newest ${archive.newest.file}, archived ${formatAge(archive.newest.ageMs)} ago (warning after ${formatAge(archive.warnAfterMs)}, critical after ${formatAge(archive.criticalAfterMs)}); ${archive.files} files; ${server}`
        : `WAL archive ${archive.location}: no authentic segment; ${archive.files} files; ${server}`,
    );
  }
  const success = (what: string, fact: StatusReport['lastSuccess']['verify']): string => `Last successful ${what}: ${fact ? `${fact.finishedAt}${fact.backupName ? ` (${fact.backupName})` : ''}` : 'none recorded'}`;
  lines.push(success('verify', report.lastSuccess.verify), success('restore test (logical: load into a scratch database)', report.restoreTests.logical), success('restore drill (physical: recovery on a scratch server)', report.restoreTests.physical));
  if (report.lastFailures.length > 0) {
    lines.push('Recent failures:');
    for (const failure of report.lastFailures) lines.push(`  ${failure.finishedAt}  ${failure.operation}${failure.backupType ? ` (${failure.backupType})` : ''} on ${failure.host}: ${failure.error?.code ?? ''} ${failure.error?.message ?? ''}`.trimEnd());
  }
  return lines.join('\n');
}
