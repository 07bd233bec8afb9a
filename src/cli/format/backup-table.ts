import type {ListedBackup} from '../../core/services/index.js';
import {formatBytes} from './bytes.js';

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** `2026-02-22 14:30:00` in UTC, as the backup names are. */
export function formatTimestamp(iso: string): string {
  return iso.replace('T', ' ').slice(0, 19);
}

/** The `backup list` table: newest first, broken backups marked at the end of their row. */
export function formatBackupTable(backups: readonly ListedBackup[]): string {
  if (backups.length === 0) return 'No backups found.\n';
  const nameWidth = Math.max(40, ...backups.map((backup) => backup.name.length));
  const row = (name: string, type: string, timestamp: string, size: string, note = ''): string =>
    `${name.padEnd(nameWidth)} ${type.padEnd(10)} ${timestamp.padEnd(20)} ${size}${note ? `  ${note}` : ''}`.trimEnd();
  const lines = [
    'Available backups:',
    row('Filename', 'Type', 'Timestamp', 'Size'),
    '-'.repeat(nameWidth + 45),
    ...backups.map((backup) =>
      row(
        backup.name,
        capitalise(backup.type),
        formatTimestamp(backup.createdAt),
        backup.size === undefined ? '-' : formatBytes(backup.size),
        backup.health === 'good' ? '' : `[${backup.problem ?? backup.health}]`,
      ),
    ),
  ];
  return `${lines.join('\n')}\n`;
}
