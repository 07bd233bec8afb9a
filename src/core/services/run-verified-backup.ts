import {SynapseError} from '../errors/index.js';
import type {BackupMethod, BackupType} from '../naming/index.js';
import {runBackup, type BackupContext, type BackupResult} from './run-backup.js';
import {verifyBackup, type VerifyReport} from './verify-backup.js';

export interface VerifiedBackupResult extends BackupResult {
  /** The read-back of the new backup; undefined when none was asked for. */
  readonly verification: VerifyReport | undefined;
}

/**
 * A backup, and with `verify` the proof that it reads back whole: decoded to its end and checked
 * against both checksums and pg_dump's completion line, before the run reports success. A backup
 * that was written but fails its read-back fails the run, naming the backup.
 */
export async function runVerifiedBackup(context: BackupContext, request: {type: BackupType; verify: boolean; method?: BackupMethod}): Promise<VerifiedBackupResult> {
  const backup = await runBackup(context, {type: request.type, method: request.method});
  if (!request.verify) return {...backup, verification: undefined};
  const encryptionProviders = context.encryption ? new Map([[context.encryption.id, context.encryption]]) : new Map();
  const verification = await verifyBackup({settings: context.settings, storage: context.storage, encryptionProviders, events: context.events, signal: context.signal, walCodec: context.walCodec}, backup.name);
  if (verification.failure) {
    throw new SynapseError(verification.failure.code, {
      message: `backup '${backup.name}' was written, but reading it back failed verification: ${verification.failure.message}`,
      details: {backupName: backup.name, checks: verification.checks},
    });
  }
  return {...backup, verification};
}
