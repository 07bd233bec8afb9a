import type {CipherParameters} from '../../contracts/encryption.js';
import {SynapseError} from '../errors/index.js';
import {BACKUP_TYPES, COMPRESSION_EXTENSIONS, parseBackupName, type BackupType, type CompressionAlgorithm} from '../naming/index.js';

export const METADATA_FORMAT_VERSION = 1;

/** The MAC over a metadata document (or a verification record), keyed from the passphrase. */
export interface DocumentAuthentication {
  readonly algorithm: 'hmac-sha256';
  /** How the MAC key comes from the passphrase: PBKDF2-HMAC-SHA256 with its own salt label, never the file's key. */
  readonly kdf: 'pbkdf2-sha256';
  readonly kdfIterations: number;
  /** Hex HMAC over the canonical JSON of the document with this `mac` left out. */
  readonly mac: string;
}

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
    /** The database's own properties, which a plain dump does not carry; absent on older backups. */
    readonly properties?: RecordedDatabaseProperties;
  };
  readonly dump: LogicalDump | PhysicalDump;
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
  /**
   * Row counts and sequence positions counted in the snapshot pg_dump dumped, for a test restore to
   * compare with. Absent on older backups and where no snapshot could be exported.
   */
  readonly fingerprint?: RecordedFingerprint;
  /**
   * The roles, memberships and role settings the database needs, which pg_dump does not carry, for
   * `restore --create-roles` on a new server. Absent on older backups.
   */
  readonly globals?: RecordedGlobals;
  /** Present on backups written with a key configured; absent on older ones and on unencrypted storages. */
  readonly authentication?: DocumentAuthentication;
  /** Where the WAL a physical backup needs begins and ends; present exactly on physical backups. */
  readonly physical?: RecordedWalRange;
}

export interface LogicalDump {
  readonly tool: 'pg_dump';
  readonly version: string;
  readonly format: 'plain';
}

/** A pg_basebackup tar of the whole cluster; its WAL is in the archive (`-X none`), not in the tar. */
export interface PhysicalDump {
  readonly tool: 'pg_basebackup';
  readonly version: string;
  readonly format: 'tar';
  readonly wal: 'archive';
}

/** What restore, verify and cleanup need to know of a physical backup's WAL. */
export interface RecordedWalRange {
  /** pg_control's system identifier, decimal: the archive's files must be this cluster's. */
  readonly systemIdentifier: string;
  readonly timeline: number;
  readonly startLsn: string;
  readonly stopLsn: string;
  /** The segment holding the start position: recovery reads from here. */
  readonly startWalFile: string;
  /** The segment holding the stop position: recovery is consistent once it has replayed up to stopLsn. */
  readonly stopWalFile: string;
  readonly walSegmentSize: number;
  /** When pg_basebackup finished (ISO 8601): a recovery target before it is one the backup cannot reach. */
  readonly stoppedAt: string;
}

export function isPhysicalBackup(metadata: BackupMetadata): metadata is BackupMetadata & {readonly dump: PhysicalDump; readonly physical: RecordedWalRange} {
  return metadata.dump.tool === 'pg_basebackup' && metadata.physical !== undefined;
}

const LSN_TEXT = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/;
const SEGMENT_TEXT = /^[0-9A-F]{24}$/;

function isWalRange(value: unknown): value is RecordedWalRange {
  if (!isRecord(value)) return false;
  const {systemIdentifier, timeline, startLsn, stopLsn, startWalFile, stopWalFile, walSegmentSize, stoppedAt} = value;
  return (
    typeof systemIdentifier === 'string' && /^\d{1,20}$/.test(systemIdentifier) &&
    Number.isSafeInteger(timeline) && (timeline as number) >= 1 &&
    typeof startLsn === 'string' && LSN_TEXT.test(startLsn) &&
    typeof stopLsn === 'string' && LSN_TEXT.test(stopLsn) &&
    typeof startWalFile === 'string' && SEGMENT_TEXT.test(startWalFile) &&
    typeof stopWalFile === 'string' && SEGMENT_TEXT.test(stopWalFile) &&
    Number.isSafeInteger(walSegmentSize) && (walSegmentSize as number) >= 1024 * 1024 && (walSegmentSize as number) <= 1024 * 1024 * 1024 && ((walSegmentSize as number) & ((walSegmentSize as number) - 1)) === 0 &&
    isInstant(stoppedAt)
  );
}

/** What `CREATE DATABASE`, `ALTER DATABASE`, `GRANT ... ON DATABASE` and `COMMENT ON DATABASE` would say. */
export interface RecordedDatabaseProperties {
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  readonly localeProvider: 'libc' | 'icu';
  readonly icuLocale: string | null;
  readonly owner: string;
  /** -1: no limit. */
  readonly connectionLimit: number;
  readonly comment: string | null;
  /** The grants on the database; null: never changed (PUBLIC may connect and make temporary tables). `grantee` null is PUBLIC. */
  readonly acl: ReadonlyArray<{readonly grantee: string | null; readonly privilege: string; readonly grantable: boolean}> | null;
  /** `ALTER DATABASE ... SET` (role null) and `ALTER ROLE ... IN DATABASE ... SET`, as `name=value`. */
  readonly settings: ReadonlyArray<{readonly role: string | null; readonly setting: string}>;
}

const DATABASE_PRIVILEGES = ['CONNECT', 'CREATE', 'TEMPORARY'];

function isDatabaseProperties(value: unknown): value is RecordedDatabaseProperties {
  if (!isRecord(value)) return false;
  const {encoding, collate, ctype, localeProvider, icuLocale, owner, connectionLimit, comment, acl, settings} = value;
  return (
    typeof encoding === 'string' && /^[A-Za-z0-9_]{1,32}$/.test(encoding) &&
    typeof collate === 'string' && collate.length <= 256 &&
    typeof ctype === 'string' && ctype.length <= 256 &&
    (localeProvider === 'libc' || localeProvider === 'icu') &&
    (icuLocale === null || (typeof icuLocale === 'string' && icuLocale.length <= 256)) &&
    isText(owner) &&
    Number.isSafeInteger(connectionLimit) && (connectionLimit as number) >= -1 &&
    (comment === null || (typeof comment === 'string' && comment.length <= 65_536)) &&
    (acl === null ||
      (Array.isArray(acl) &&
        acl.every((grant) => isRecord(grant) && (grant.grantee === null || isText(grant.grantee)) && DATABASE_PRIVILEGES.includes(grant.privilege as string) && typeof grant.grantable === 'boolean'))) &&
    Array.isArray(settings) &&
    settings.every((setting) => isRecord(setting) && (setting.role === null || isText(setting.role)) && isText(setting.setting) && (setting.setting as string).includes('='))
  );
}

export interface RecordedFingerprint {
  readonly takenIn: 'dump-snapshot';
  readonly tables: ReadonlyArray<{readonly schema: string; readonly name: string; readonly rows: number}>;
  readonly sequences: ReadonlyArray<{readonly schema: string; readonly name: string; readonly lastValue: string; readonly isCalled: boolean; readonly increment: string}>;
}

export interface RecordedGlobals {
  readonly roles: ReadonlyArray<{
    readonly name: string;
    readonly superuser: boolean;
    readonly inherit: boolean;
    readonly createRole: boolean;
    readonly createDb: boolean;
    readonly canLogin: boolean;
    readonly replication: boolean;
    readonly bypassRls: boolean;
    readonly connectionLimit: number;
    readonly validUntil: string | null;
  }>;
  readonly memberships: ReadonlyArray<{readonly role: string; readonly member: string; readonly admin: boolean}>;
  readonly settings: ReadonlyArray<{readonly role: string; readonly setting: string}>;
  /**
   * 'included': the roles' password hashes are in `passwordHashes`, encrypted like the backup;
   * 'omitted-unencrypted': never stored for an unencrypted backup; 'omitted-not-readable': the
   * role that took the backup cannot read them (only a superuser can).
   */
  readonly passwords: 'included' | 'omitted-unencrypted' | 'omitted-not-readable';
  /** Base64 of the backup's cipher over the JSON object {role: hash}, with the backup's key. */
  readonly passwordHashes?: string;
}

const ROLE_FLAGS = ['superuser', 'inherit', 'createRole', 'createDb', 'canLogin', 'replication', 'bypassRls'] as const;

function isGlobals(value: unknown): value is RecordedGlobals {
  if (!isRecord(value) || !Array.isArray(value.roles) || !Array.isArray(value.memberships) || !Array.isArray(value.settings)) return false;
  if (!['included', 'omitted-unencrypted', 'omitted-not-readable'].includes(value.passwords as string)) return false;
  if ((value.passwords === 'included') !== (typeof value.passwordHashes === 'string' && /^[A-Za-z0-9+/=]+$/.test(value.passwordHashes))) return false;
  return (
    value.roles.every(
      (role) =>
        isRecord(role) &&
        isText(role.name) &&
        ROLE_FLAGS.every((flag) => typeof role[flag] === 'boolean') &&
        Number.isSafeInteger(role.connectionLimit) &&
        (role.validUntil === null || isText(role.validUntil)),
    ) &&
    value.memberships.every((membership) => isRecord(membership) && isText(membership.role) && isText(membership.member) && typeof membership.admin === 'boolean') &&
    value.settings.every((setting) => isRecord(setting) && isText(setting.role) && isText(setting.setting) && (setting.setting as string).includes('='))
  );
}

function isFingerprint(value: unknown): value is RecordedFingerprint {
  if (!isRecord(value) || value.takenIn !== 'dump-snapshot' || !Array.isArray(value.tables) || !Array.isArray(value.sequences)) return false;
  const named = (item: unknown): item is Record<string, unknown> => isRecord(item) && isText(item.schema) && isText(item.name);
  return (
    value.tables.every((table) => named(table) && isCount(table.rows)) &&
    value.sequences.every((sequence) => named(sequence) && typeof sequence.lastValue === 'string' && /^-?\d{1,20}$/.test(sequence.lastValue) && typeof sequence.isCalled === 'boolean' && typeof sequence.increment === 'string' && /^-?\d{1,20}$/.test(sequence.increment))
  );
}

/** The most a metadata document may weigh; anything larger is not ours (the fingerprint of a database with tens of thousands of tables fits). */
export const MAX_METADATA_BYTES = 8 * 1024 * 1024;

export function serializeMetadata(metadata: BackupMetadata): string {
  return `${JSON.stringify(metadata, null, 2)}\n`;
}

function fail(name: string, reason: string): never {
  throw new SynapseError('E_METADATA', {message: `unable to read metadata of backup '${name}': ${reason}`});
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const isText = (value: unknown): value is string => typeof value === 'string' && value !== '' && value.length <= 1024;
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const isInstant = (value: unknown): value is string => typeof value === 'string' && !Number.isNaN(Date.parse(value));

/** Upper bound on a recorded PBKDF2 iteration count: a forged document must not make us spin for hours. */
export const MAX_KDF_ITERATIONS = 10_000_000;

export function parseAuthentication(value: unknown): DocumentAuthentication | string {
  if (!isRecord(value)) return 'authentication is malformed';
  if (value.algorithm !== 'hmac-sha256' || value.kdf !== 'pbkdf2-sha256') return `authentication ${String(value.algorithm)}/${String(value.kdf)} is not supported`;
  if (!Number.isSafeInteger(value.kdfIterations) || (value.kdfIterations as number) < 1 || (value.kdfIterations as number) > MAX_KDF_ITERATIONS) return 'authentication iterations are out of range';
  if (typeof value.mac !== 'string' || !SHA256_HEX.test(value.mac)) return 'authentication MAC is malformed';
  return value as unknown as DocumentAuthentication;
}

/**
 * Parses and checks a metadata document field by field; anything off is an E_METADATA error
 * naming the field, so one bad document never reaches code that trusts its shape.
 */
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
  const parts = parseBackupName(backupName);
  if (!parts) fail(backupName, 'not a backup name');
  if (!BACKUP_TYPES.includes(document.backupType as BackupType)) fail(backupName, 'backupType is missing or unknown');
  if (parts.type !== document.backupType) fail(backupName, `it records a ${String(document.backupType)} backup, which the file name contradicts`);
  if (!isInstant(document.createdAt)) fail(backupName, 'createdAt is missing');
  if (!isInstant(document.completedAt)) fail(backupName, 'completedAt is missing');
  if (!isCount(document.durationMs)) fail(backupName, 'durationMs is missing');
  const {database, dump, sizes, checksums, compression, encryption, tool} = document;
  if (!isRecord(database) || !isText(database.name) || !isText(database.serverVersion) || !isCount(database.serverVersionNum)) fail(backupName, 'database is missing or incomplete');
  if (database.properties !== undefined && !isDatabaseProperties(database.properties)) fail(backupName, 'database properties are malformed');
  const physicalName = parts.format === 'tar';
  if (!isRecord(dump) || !isText(dump.version)) fail(backupName, 'dump is missing');
  if (physicalName) {
    if (dump.tool !== 'pg_basebackup' || dump.format !== 'tar' || dump.wal !== 'archive') fail(backupName, 'the file name says a physical backup, but dump is not a pg_basebackup tar');
    if (!isWalRange(document.physical)) fail(backupName, 'the WAL range of a physical backup is missing or malformed');
  } else {
    if (dump.tool !== 'pg_dump' || dump.format !== 'plain') fail(backupName, 'dump is missing or not a plain pg_dump');
    if (document.physical !== undefined) fail(backupName, 'it records a WAL range, but the file name says a logical backup');
  }
  if (!isRecord(sizes) || !isCount(sizes.storedBytes) || !isCount(sizes.plaintextBytes)) fail(backupName, 'sizes are missing');
  if (!isRecord(checksums) || checksums.algorithm !== 'sha256' || !SHA256_HEX.test(String(checksums.stored)) || !SHA256_HEX.test(String(checksums.plaintext))) {
    fail(backupName, 'SHA-256 checksums are missing');
  }
  if (!isRecord(compression) || !Object.hasOwn(COMPRESSION_EXTENSIONS, String(compression.algorithm))) fail(backupName, 'compression is missing or unknown');
  if (!Number.isSafeInteger(compression.level)) fail(backupName, 'compression level is missing');
  if (parts.compression !== compression.algorithm) fail(backupName, `it records ${String(compression.algorithm)} compression, which the file name contradicts`);
  if (encryption !== null) {
    if (!isRecord(encryption) || !['provider', 'cipher', 'kdf', 'kdfDigest', 'container'].every((field) => isText(encryption[field]))) fail(backupName, 'encryption is malformed');
    if (!Number.isSafeInteger(encryption.kdfIterations) || (encryption.kdfIterations as number) < 1 || (encryption.kdfIterations as number) > MAX_KDF_ITERATIONS) {
      fail(backupName, 'encryption iterations are out of range');
    }
  }
  // The name is what list shows and what the stock-tools recipe trusts; the two must agree.
  if (parts.encrypted !== (encryption !== null)) {
    fail(backupName, parts.encrypted ? 'the file name says encrypted, but the metadata says it is not' : 'the metadata says encrypted, but the file name says it is not');
  }
  if (!isRecord(tool) || tool.name !== 'synapse-backup' || !isText(tool.version)) fail(backupName, 'tool is missing');
  if (document.fingerprint !== undefined && !isFingerprint(document.fingerprint)) fail(backupName, 'fingerprint is malformed');
  if (document.globals !== undefined && !isGlobals(document.globals)) fail(backupName, 'globals are malformed');
  if (document.globals !== undefined && (document.globals as RecordedGlobals).passwords === 'included' && encryption === null) fail(backupName, 'it carries password hashes but is not encrypted');
  if (document.authentication !== undefined) {
    const authentication = parseAuthentication(document.authentication);
    if (typeof authentication === 'string') fail(backupName, authentication);
  }
  return document as unknown as BackupMetadata;
}
