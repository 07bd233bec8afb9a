import {SynapseError} from '../../errors/index.js';
import type {BackupMetadata} from '../../metadata/index.js';
import {storageError} from '../../storage/index.js';
import {checkStoredFile} from '../../verification/index.js';
import {type Decryption, keyFits} from '../stored-backup.js';
import {type RestoreContext, cancelled} from './restore-types.js';

// Step 2: check the stored file and the key, while the rest is set up

/** Reads the whole stored file and checks its size and SHA-256 against the metadata. */
export async function verifyStoredFile(context: RestoreContext, metadata: BackupMetadata, signal: AbortSignal): Promise<void> {
  const {storage, events} = context;
  const name = metadata.backupName;
  events.stage('verify', 'started');
  let check;
  try {
    check = await checkStoredFile(storage, metadata, {signal, onProgress: (bytes) => events.stage('verify', 'progress', {bytes})});
  } catch (error) {
    events.stage('verify', 'failed');
    if (signal.aborted) throw cancelled();
    throw storageError(error, storage, 'read backup', name);
  }
  if (check.problem) {
    events.stage('verify', 'failed');
    throw new SynapseError('E_INTEGRITY', {message: `unable to restore '${name}': the stored file is damaged: ${check.problem}`, details: {expected: metadata.checksums.stored, actual: check.sha256}});
  }
  events.stage('verify', 'finished', {bytes: check.bytes, detail: `sha256 ${check.sha256}`});
}

export async function assertKeyFits(context: RestoreContext, metadata: BackupMetadata, decryption: Decryption): Promise<void> {
  if (!(await keyFits(context.storage, metadata, decryption))) {
    throw new SynapseError('E_WRONG_KEY', {
      message: `unable to decrypt '${metadata.backupName}': the configured key is not the one it was encrypted with (its checksum is intact)`,
    });
  }
}

export interface IntegrityChecks {
  /** Aborted as soon as one check fails, to end the countdown at once. */
  readonly failed: AbortSignal;
  /** Resolves when both checks passed; rejects with the more useful failure. */
  readonly passed: Promise<void>;
  /** The checks' failure, if they failed; undefined if they passed. */
  failure(): Promise<unknown>;
}

/**
 * The full read and the key derivation each take a few hundred ms; they run while psql is probed,
 * the plan is confirmed and the scratch database is created, but the load waits for both, so
 * nothing is ever loaded from a damaged file or with a wrong key. A damaged file is the more
 * useful report, so it wins over a wrong key.
 */
export function startIntegrityChecks(context: RestoreContext, metadata: BackupMetadata, decryption: Decryption | undefined, signal: AbortSignal): IntegrityChecks {
  const {events} = context;
  const checkKey = async (): Promise<void> => {
    if (!decryption) {
      events.stage('decrypt', 'skipped', {detail: 'backup is not encrypted'});
      return;
    }
    events.stage('decrypt', 'started');
    try {
      await assertKeyFits(context, metadata, decryption);
    } catch (error) {
      events.stage('decrypt', 'failed');
      throw error;
    }
    events.stage('decrypt', 'finished', {detail: 'key accepted'});
  };
  const failed = new AbortController();
  const passed = Promise.allSettled([verifyStoredFile(context, metadata, signal), checkKey()]).then(([verified, keyChecked]) => {
    if (verified.status === 'rejected') throw verified.reason;
    if (keyChecked.status === 'rejected') throw keyChecked.reason;
  });
  passed.catch(() => failed.abort());
  return {failed: failed.signal, passed, failure: () => passed.then(() => undefined, (error: unknown) => error)};
}
