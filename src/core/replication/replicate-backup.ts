import {SynapseError} from '../errors/index.js';
import {acquireStorageLock, describeTakeover} from '../lock/index.js';
import type {DocumentAuthenticator} from '../metadata/index.js';
import {copyBackup} from './copy-backup.js';
import type {Location, LocationFailure} from './location.js';
import {copySourceAt} from './sync-locations.js';

/** Where one backup is, location by location, once a run is done. */
export interface LocationOutcome {
  readonly location: string;
  /** 'written': the run's own dump went there; 'copied': the same bytes, copied from there; 'failed': not there. */
  readonly outcome: 'written' | 'copied' | 'failed';
  readonly error?: {readonly code: string; readonly message: string};
}

export function failedOutcome(failure: LocationFailure): LocationOutcome {
  const code = (failure.error as {code?: unknown}).code;
  return {location: failure.location, outcome: 'failed', error: {code: typeof code === 'string' ? code : 'E_STORAGE', message: failure.error.message}};
}

/**
 * Copies a backup just written at `writer` to every other location, one at a time, each under its
 * own lock: a location that fails is named with why, and never costs the others their copy nor
 * the writer its backup.
 */
export async function replicateBackup(
  writer: Location,
  targets: readonly Location[],
  backup: {readonly name: string; readonly sha256: string},
  options: {readonly authenticator: DocumentAuthenticator | undefined; readonly signal?: AbortSignal; readonly onWarning?: (message: string) => void; readonly onCopied?: (location: string) => void},
): Promise<LocationOutcome[]> {
  const outcomes: LocationOutcome[] = [];
  for (const target of targets) {
    try {
      if (options.signal?.aborted) throw new SynapseError('E_CANCELLED', {message: `replication of '${backup.name}' to location '${target.name}' cancelled`});
      const lock = await acquireStorageLock(target.storage, 'backup run (replication)');
      if (lock.tookOverFrom) options.onWarning?.(describeTakeover(lock.tookOverFrom));
      try {
        const source = await copySourceAt(writer, backup.name, options.authenticator, backup.sha256);
        const copied = await copyBackup(source, target, options.signal ? {signal: options.signal} : {});
        if (copied.outcome === 'conflict') throw new SynapseError('E_STORAGE', {message: `location '${target.name}' holds another '${backup.name}': ${copied.reason}`});
      } finally {
        await lock.release().catch(() => {});
      }
      outcomes.push({location: target.name, outcome: 'copied'});
      options.onCopied?.(target.name);
    } catch (error) {
      outcomes.push(failedOutcome({location: target.name, error: error as Error}));
    }
  }
  return outcomes;
}

/** The run's failure when some location lacks the backup: which, and why; the others hold it. */
export function replicationFailure(name: string, outcomes: readonly LocationOutcome[]): SynapseError | undefined {
  const failed = outcomes.filter((outcome) => outcome.outcome === 'failed');
  if (failed.length === 0) return undefined;
  const held = outcomes.filter((outcome) => outcome.outcome !== 'failed').map((outcome) => `'${outcome.location}'`);
  return new SynapseError('E_REPLICATION', {
    message: `backup '${name}' is at ${held.join(', ')}, but not at ${failed.map((outcome) => `'${outcome.location}' (${outcome.error?.message ?? 'failed'})`).join('; ')}`,
    details: {backupName: name, locations: outcomes},
  });
}
