import type {PhysicalDrillResult, RestoreTestResult} from '../../core/services/index.js';
import {formatBytes, formatDuration, formatRate} from '../../core/units/index.js';

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

/** A physical backup's drill: where recovery ended and why, what was checked, each step's time and the replay rate. */
export function formatPhysicalDrill(result: PhysicalDrillResult): string {
  const {steps} = result;
  return [
    `Drill of ${result.backupName} (${result.backupType === 'hourly' ? 'an' : 'a'} ${result.backupType} physical backup, system identifier ${result.systemIdentifier}): recovered on a scratch server and promoted in ${formatDuration(result.durationMs)}.`,
    `Recovery ended at ${result.recoveryEnd.lsn} on timeline ${result.recoveryEnd.timeline} (${result.recoveryEnd.reason}); the archive's WAL reaches ${result.archiveReach.newestWalFile ?? result.archiveReach.throughWalFile}.`,
    `Replayed ${formatBytes(result.replayedBytes)} of WAL in ${formatDuration(steps.recoveryMs)} (${formatRate(result.replayedBytes, steps.recoveryMs)}).`,
    `Checked: ${result.databases.length} databases accept connections (${result.databases.join(', ')}); ${result.integrity.tool}: ${result.integrity.detail}.`,
    `Steps: restore ${formatDuration(steps.restoreMs)} (${formatBytes(result.extractedBytes)} extracted), recovery ${formatDuration(steps.recoveryMs)}, checks ${formatDuration(steps.checkMs)}.`,
    `The scratch server was stopped and its directory removed.`,
  ].join('\n');
}
