import type {ListedBackup} from '../../core/services/index.js';
import {formatBytes} from '../../core/units/index.js';

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Where a replicated backup is good, and what each other location lacks: `primary, offsite; nas: missing`. */
function locationNote(backup: ListedBackup): string {
  const good = backup.locations!.filter((copy) => copy.state === 'good').map((copy) => copy.location);
  const others = backup.locations!.filter((copy) => copy.state !== 'good').map((copy) => `${copy.location}: ${copy.state}`);
  return [good.length > 0 ? `good at ${good.join(', ')}` : '[no good copy]', ...others].join('; ');
}

/** `2026-02-22 14:30:00` in UTC, as the backup names are. */
export function formatTimestamp(iso: string): string {
  return iso.replace('T', ' ').slice(0, 19);
}

/**
 * The `backup list` table: newest first, broken backups marked at the end of their row. The
 * Database column only where several databases are shown (--all-databases); for one database the
 * table is the product's promise: Filename, Type, Timestamp, Size.
 */
export function formatBackupTable(backups: readonly ListedBackup[], heading = 'Available backups:', options: {showDatabase?: boolean} = {}): string {
  if (backups.length === 0) return `${heading}\nNo backups found.\n`;
  const nameWidth = Math.max(40, ...backups.map((backup) => backup.name.length));
  const databaseWidth = Math.max(8, ...backups.map((backup) => (backup.database ?? '?').length));
  const row = (name: string, database: string, type: string, timestamp: string, size: string, note = ''): string =>
    `${name.padEnd(nameWidth)} ${options.showDatabase ? `${database.padEnd(databaseWidth)} ` : ''}${type.padEnd(10)} ${timestamp.padEnd(20)} ${size.padStart(10)}${note ? `  ${note}` : ''}`.trimEnd();
  const header = row('Filename', 'Database', 'Type', 'Timestamp', 'Size');
  const lines = [
    heading,
    header,
    '-'.repeat(header.length),
    ...backups.map((backup) =>
      row(
        backup.name,
        backup.database ?? '?',
        capitalise(backup.type),
        formatTimestamp(backup.createdAt),
        backup.size === undefined ? '-' : formatBytes(backup.size),
        backup.locations ? locationNote(backup) : backup.health === 'good' ? '' : `[${backup.problem ?? backup.health}]`,
      ),
    ),
  ];
  return `${lines.join('\n')}\n`;
}
