import type {CatalogEntry} from '../catalog/index.js';
import {applyRetentionPolicy, type RetentionCandidate, type RetentionPolicy} from '../retention/index.js';
import type {LocatedBackup} from './located-backups.js';

/** A backup as the policy counts it: every one taken for verified (see wouldKeep). */
function candidateOf(entry: CatalogEntry): RetentionCandidate {
  return {
    name: entry.name,
    type: entry.parts.type,
    database: entry.metadata?.database.name,
    startedAt: entry.parts.startedAt,
    sequence: entry.parts.sequence,
    health: entry.health,
    verified: true,
  };
}

/**
 * Whether a location that lacks `wanted` would keep it under its own policy if it held it good:
 * then it needs a copy, and the location that has the only good one must not remove it first.
 */
function wouldKeep(held: readonly CatalogEntry[], wanted: CatalogEntry, policy: RetentionPolicy): boolean {
  // The policy's counts alone: whether the newer ones are verified yet only delays a removal, and would make every old backup look wanted.
  const candidates = [...held.filter((entry) => entry.name !== wanted.name).map(candidateOf), {...candidateOf(wanted), health: 'good' as const}];
  const decision = applyRetentionPolicy(candidates, policy, {database: wanted.metadata?.database.name}).find((candidate) => candidate.name === wanted.name);
  return decision?.action === 'keep';
}

export interface LocationHoldings {
  readonly location: string;
  /** Its catalog's entries; undefined when it could not be read (then it may lack anything). */
  readonly entries: readonly CatalogEntry[] | undefined;
  readonly policy: RetentionPolicy;
}

/**
 * Why `location` must keep a backup its own retention would remove: it holds the only good copy,
 * and another location lacks it and would keep it (by its own policy) if it had it, or cannot be
 * read. Undefined when the backup may go: a good copy is elsewhere too, or no other location
 * wants it any more.
 */
export function keepAsOnlyGoodCopy(backup: LocatedBackup, location: string, holdings: readonly LocationHoldings[]): string | undefined {
  const good = backup.copies.filter((copy) => copy.state === 'good');
  if (good.length !== 1 || good[0]!.location !== location || !good[0]!.entry) return undefined;
  const needing = backup.copies
    .filter((copy) => copy.location !== location)
    .filter((copy) => {
      const holding = holdings.find((candidate) => candidate.location === copy.location);
      return !holding?.entries || wouldKeep(holding.entries, good[0]!.entry!, holding.policy);
    });
  if (needing.length === 0) return undefined;
  return `the only good copy: ${needing.map((copy) => `'${copy.location}' ${copy.state === 'unreadable' ? 'could not be read' : `has it ${copy.state}`} and keeps it by its retention`).join(', ')}; kept until \`backup sync\` has copied it`;
}
