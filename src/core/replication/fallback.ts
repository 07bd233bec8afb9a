import {SynapseError, isSynapseError} from '../errors/index.js';
import type {Location} from './location.js';

/**
 * Failures that say something about one location's copy (missing, damaged, not authentic, made
 * with another key, a storage that failed), not about the operation: another location's copy may
 * serve. Each is raised by the same checks a single location gets, before anything is loaded.
 */
export const COPY_FAILURE_CODES: ReadonlySet<string> = new Set(['E_BACKUP_NOT_FOUND', 'E_INTEGRITY', 'E_METADATA', 'E_NOT_AUTHENTIC', 'E_UNENCRYPTED', 'E_WRONG_KEY', 'E_STORAGE', 'E_STORAGE_UNWRITABLE', 'E_STORAGE_FULL']);

export interface SkippedLocation {
  readonly location: string;
  readonly code: string;
  readonly reason: string;
}

export interface FromLocation<R> {
  readonly result: R;
  /** The location whose copy was used. */
  readonly location: string;
  /** The locations tried before it, and why each was passed over. */
  readonly skipped: readonly SkippedLocation[];
}

/**
 * Runs `attempt` on the locations in order until one's copy serves: a copy that is missing,
 * damaged or not authentic there is passed over, said, and the next location tried. Any other
 * failure (the database, a cancellation, a refusal of the operator's) ends it at once. When none
 * serves, the error names every location and why.
 */
export async function fromFirstGoodLocation<R>(locations: readonly Location[], what: string, attempt: (location: Location) => Promise<R>, onSkip?: (skipped: SkippedLocation, next: string) => void): Promise<FromLocation<R>> {
  // One location: its failure as it is, worded as it always was.
  if (locations.length === 1) return {result: await attempt(locations[0]!), location: locations[0]!.name, skipped: []};
  const skipped: SkippedLocation[] = [];
  const errors: SynapseError[] = [];
  for (const [index, location] of locations.entries()) {
    try {
      return {result: await attempt(location), location: location.name, skipped};
    } catch (error) {
      if (!isSynapseError(error) || !COPY_FAILURE_CODES.has(error.code)) throw error;
      const passed = {location: location.name, code: error.code, reason: error.message};
      skipped.push(passed);
      errors.push(error);
      const next = locations[index + 1];
      if (next) onSkip?.(passed, next.name);
    }
  }
  // Missing everywhere is missing; otherwise the first copy's failure that was not its absence says the most.
  const telling = errors.find((error) => error.code !== 'E_BACKUP_NOT_FOUND') ?? errors[0]!;
  throw new SynapseError(telling.code as 'E_INTEGRITY', {
    message: `unable to ${what} from any location: ${skipped.map((skip) => `'${skip.location}': ${skip.reason}`).join('; ')}`,
    suggestion: telling.suggestion,
    details: {...telling.details, locations: skipped},
    cause: telling,
  });
}
