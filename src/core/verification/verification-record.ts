import type {ObjectInfo, StorageBackend} from '../../contracts/storage.js';
import {isRecord, parseAuthentication, type BackupMetadata, type DocumentAuthentication, type DocumentAuthenticator} from '../metadata/index.js';
import {verificationKeyFor} from '../naming/index.js';
import {readSmallObject, writeSmallObject} from '../storage/index.js';

/**
 * Written when a backup's stored file has been read back whole and matched its metadata, so that
 * the full read is made once per backup, not at every cleanup. It is only believed while the file
 * still has the size and modification time it had then, and, with a key, while its MAC is right.
 *
 * Also written when a verification found the backup damaged (`outcome: 'failed'`): then no reader
 * takes the backup for good until a later verification passes and replaces the record. A failure
 * record is believed even unauthenticated, since it can only make a backup count for less.
 */
export interface VerificationRecord {
  readonly formatVersion: 1;
  readonly backupName: string;
  readonly storedSha256: string;
  readonly storedBytes: number;
  /** The stored file's modification time when it was read, ISO 8601. */
  readonly fileModifiedAt: string;
  readonly verifiedAt: string;
  /** Absent on records written before failures were recorded: those were all passes. */
  readonly outcome?: 'passed' | 'failed';
  /** What the failed verification found. */
  readonly failure?: string;
  readonly authentication?: DocumentAuthentication;
}

const MAX_RECORD_BYTES = 16 * 1024;

function parseRecord(name: string, text: string): VerificationRecord | undefined {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(document) || document.formatVersion !== 1 || document.backupName !== name) return undefined;
  if (typeof document.storedSha256 !== 'string' || !Number.isSafeInteger(document.storedBytes) || typeof document.fileModifiedAt !== 'string' || typeof document.verifiedAt !== 'string') return undefined;
  if (document.outcome !== undefined && document.outcome !== 'passed' && document.outcome !== 'failed') return undefined;
  if (document.failure !== undefined && typeof document.failure !== 'string') return undefined;
  if (document.authentication !== undefined && typeof parseAuthentication(document.authentication) === 'string') return undefined;
  return document as unknown as VerificationRecord;
}

export interface VerificationState {
  /** A passed verification that still vouches for the file as it is now. */
  readonly passed?: VerificationRecord;
  /** The last verification found the backup damaged. */
  readonly failed?: VerificationRecord;
}

/**
 * What the backup's verification record says. A pass counts only while it still vouches for the
 * file as it is now: same checksum as the metadata, same size and modification time as the stored
 * object, and authentic when a key is configured; anything else is no pass. A failure counts as
 * it stands.
 */
export async function readVerificationState(
  storage: StorageBackend,
  metadata: BackupMetadata,
  object: ObjectInfo,
  authenticator: DocumentAuthenticator | undefined,
): Promise<VerificationState> {
  let text: string;
  try {
    text = await readSmallObject(storage, verificationKeyFor(metadata.backupName), MAX_RECORD_BYTES);
  } catch {
    return {};
  }
  const record = parseRecord(metadata.backupName, text);
  if (!record) return {};
  if (record.outcome === 'failed') return {failed: record};
  if (record.storedSha256 !== metadata.checksums.stored || record.storedBytes !== metadata.sizes.storedBytes) return {};
  if (record.storedBytes !== object.size || record.fileModifiedAt !== object.modifiedAt.toISOString()) return {};
  if (authenticator && (await authenticator.verify(record)).status !== 'authentic') return {};
  return {passed: record};
}

export async function writeVerificationRecord(
  storage: StorageBackend,
  metadata: BackupMetadata,
  object: ObjectInfo,
  authenticator: DocumentAuthenticator | undefined,
  now: Date,
  failure?: string,
): Promise<VerificationRecord> {
  const unsigned: VerificationRecord = {
    formatVersion: 1,
    backupName: metadata.backupName,
    storedSha256: metadata.checksums.stored,
    storedBytes: metadata.sizes.storedBytes,
    fileModifiedAt: object.modifiedAt.toISOString(),
    verifiedAt: now.toISOString(),
    outcome: failure === undefined ? 'passed' : 'failed',
    ...(failure === undefined ? {} : {failure: failure.slice(0, 2000)}),
  };
  const record = authenticator ? await authenticator.sign(unsigned) : unsigned;
  await writeSmallObject(storage, verificationKeyFor(metadata.backupName), `${JSON.stringify(record, null, 2)}\n`, {private: true});
  return record;
}
