import path from 'node:path';

import {PENDING_WAIT_MS, acknowledgementMatches, awaitPending, boundLocations, consumeAcknowledgement, spoolDirectoryOf} from '../../core/wal/acknowledgements.js';

/**
 * `wal push FILE` for a file an earlier push archived ahead of the archiver's asking: true when the
 * spool acknowledges this file at these locations (acknowledgementMatches), and the acknowledgement
 * is used up; a file that a push still running has in hand is waited for first (awaitPending).
 * Loads nothing but node: modules, so the archiver's call costs a Node start, not a CLI start; with
 * the default spool the launcher answers before even that, by the same rule. Anything else (flags,
 * no spool, no or another acknowledgement, an error) is false: the full push decides.
 */
export async function acknowledgedPush(args: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<boolean> {
  if (args.length !== 1 || args[0]!.startsWith('-')) return false;
  try {
    const walPath = args[0]!;
    const spool = spoolDirectoryOf(walPath, env.WAL_SPOOL_DIR?.trim() || undefined);
    if (!spool) return false;
    await awaitPending(spool, path.basename(walPath), Date.now() + PENDING_WAIT_MS);
    if (!acknowledgementMatches(spool, walPath, boundLocations(env))) return false;
    consumeAcknowledgement(spool, path.basename(walPath));
    return true;
  } catch {
    return false;
  }
}
