import type {RestoreLeftovers} from '../../core/services/index.js';

/** What earlier restores left on the server, as lines for `list` and `cleanup`; empty when nothing. */
export function formatRestoreLeftovers(leftovers: RestoreLeftovers | null): string[] {
  if (!leftovers) return [];
  const lines: string[] = [];
  for (const database of leftovers.reclaimed) lines.push(`dropped database '${database}' (left by a ${database.startsWith('synapse_restore_test_') ? 'test restore' : 'restore'} that did not finish)`);
  for (const {database, drop, reason} of leftovers.abandoned) lines.push(`database '${database}': ${reason}. Drop it: ${drop}`);
  if (leftovers.previous.length > 0) {
    lines.push('Databases kept by earlier restores (the content before each restore; drop them when no longer needed):');
    for (const {database, drop} of leftovers.previous) lines.push(`  ${database}   ${drop}`);
  }
  return lines;
}
