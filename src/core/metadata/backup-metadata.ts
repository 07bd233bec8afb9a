import type {CipherParameters} from '../../contracts/encryption.js';
import {SynapseError} from '../errors/index.js';
import {BACKUP_TYPES, COMPRESSION_EXTENSIONS, parseBackupName, type BackupType, type CompressionAlgorithm} from '../naming/index.js';

export const METADATA_FORMAT_VERSION = 1;

/**
 * The document written beside every backup, last, as the mark that the backup is complete.
 * It holds everything needed to verify and restore the backup except the key.
 */
export interface BackupMetadata {
  readonly formatVersion: number;
  readonly backupName: string;
  readonly backupType: BackupType;
  /** ISO 8601, UTC. */
  readonly createdAt: string;
  readonly completedAt: string;
  readonly durationMs: number;
  readonly database: {
    readonly name: string;
    readonly serverVersion: string;
    readonly serverVersionNum: number;
  };
  readonly dump: {
    readonly tool: 'pg_dump';
    readonly version: string;
    readonly format: 'plain';
  };
  readonly sizes: {
    /** Bytes of SQL that pg_dump wrote. */
    readonly plaintextBytes: number;
    /** Bytes of the stored file. */
    readonly storedBytes: number;
  };
  readonly checksums: {
    readonly algorithm: 'sha256';
    /** Of the stored file: checked before a restore touches anything. */
    readonly stored: string;
    /** Of the SQL stream: checked again as a restore decodes it. */
    readonly plaintext: string;
  };
  readonly compression: {
    readonly algorithm: CompressionAlgorithm;
    readonly level: number;
  };
  readonly encryption: CipherParameters | null;
  readonly tool: {
    readonly name: 'synapse-backup';
    readonly version: string;
  };
}

export function serializeMetadata(metadata: BackupMetadata): string {
  return `${JSON.stringify(metadata, null, 2)}\n`;
}

function fail(name: string, reason: string): never {
  throw new SynapseError('E_METADATA', {message: `unable to read metadata of backup '${name}': ${reason}`});
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses and checks a metadata document; anything off is an E_METADATA error naming the field. */
export function parseMetadata(backupName: string, text: string): BackupMetadata {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    fail(backupName, 'not valid JSON');
  }
  if (!isRecord(document)) fail(backupName, 'not a JSON object');
  if (document.formatVersion !== METADATA_FORMAT_VERSION) {
    fail(backupName, `format version ${String(document.formatVersion)} is not supported (this synapse-backup reads version ${METADATA_FORMAT_VERSION})`);
  }
  if (document.backupName !== backupName) fail(backupName, `it describes '${String(document.backupName)}'`);
  if (!BACKUP_TYPES.includes(document.backupType as BackupType)) fail(backupName, 'backupType is missing or unknown');
  const {sizes, checksums, compression} = document;
  if (!isRecord(sizes) || !Number.isSafeInteger(sizes.storedBytes) || !Number.isSafeInteger(sizes.plaintextBytes)) fail(backupName, 'sizes are missing');
  if (!isRecord(checksums) || !/^[0-9a-f]{64}$/.test(String(checksums.stored)) || !/^[0-9a-f]{64}$/.test(String(checksums.plaintext))) {
    fail(backupName, 'SHA-256 checksums are missing');
  }
  if (!isRecord(compression) || !Object.hasOwn(COMPRESSION_EXTENSIONS, String(compression.algorithm))) fail(backupName, 'compression is missing or unknown');
  if (parseBackupName(backupName)?.compression !== compression.algorithm) fail(backupName, `it records ${String(compression.algorithm)} compression, which the file name contradicts`);
  if (document.encryption !== null && !isRecord(document.encryption)) fail(backupName, 'encryption is malformed');
  if (typeof document.createdAt !== 'string' || Number.isNaN(Date.parse(document.createdAt))) fail(backupName, 'createdAt is missing');
  return document as unknown as BackupMetadata;
}
