import type {RestoreTestResult} from '../../core/services/index.js';
import {formatBytes, formatDuration} from '../../core/units/index.js';

/** The verdict, what was compared, and each difference; the scratch database's fate. */
export function formatRestoreTest(result: RestoreTestResult): string {
  const {comparison} = result;
  const lines = [`Test restore of ${result.backupName} (${result.backupType === 'hourly' ? 'an' : 'a'} ${result.backupType} backup of database '${result.sourceDatabase}'): ${formatBytes(result.plaintextBytes)} of SQL loaded into '${result.scratchDatabase}' in ${formatDuration(result.durationMs)}.`];
  if (comparison.status === 'matched') lines.push(`Data matches the backup: ${comparison.tables} tables and ${comparison.sequences} sequences hold what was counted in pg_dump's snapshot at backup time.`);
  else if (comparison.status === 'skipped') lines.push(`Comparison skipped: ${comparison.reason}. The backup loaded cleanly.`);
  else for (const difference of comparison.differences) lines.push(`  differs: ${difference.kind} ${difference.schema}.${difference.name}: expected ${difference.expected ?? 'nothing'}, restored ${difference.actual ?? 'nothing'}`);
  lines.push(`The scratch database '${result.scratchDatabase}' was dropped.`);
  return lines.join('\n');
}
