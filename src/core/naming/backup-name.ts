import {STAGING_SUFFIX, areaOf} from '../../contracts/storage.js';

/**
 * The areas of a storage (see the storage contract): backups and all that belongs to them live
 * outside every area, where every version has written them; the WAL archive under `wal/`.
 */
export const AREAS = {backups: '', wal: 'wal/'} as const;
export type AreaName = keyof typeof AREAS | 'foreign';

/** Which of our areas a key is in; 'foreign' for an area this tool never writes. */
export function areaOfKey(key: string): AreaName {
  const area = areaOf(key);
  const known = (Object.entries(AREAS) as Array<[keyof typeof AREAS, string]>).find(([, prefix]) => prefix === area);
  return known ? known[0] : 'foreign';
}

/**
 * The prefixes under which everything the catalog sorts out lies (backups and their companions,
 * the lock, check probes, the journal, and the staging objects of each): what is listed instead
 * of the whole storage.
 */
export const CATALOG_PREFIXES = ['backup_', 'synapse-backup'] as const;

export const BACKUP_TYPES = ['hourly', 'daily', 'monthly'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

export const METADATA_SUFFIX = '.meta.json';
/** The record that a backup's stored file was read back whole and matched its checksum. */
export const VERIFICATION_SUFFIX = '.verified.json';
/** Written before a backup's file is published and removed after its metadata: marks a run in progress (or killed). */
export const PENDING_SUFFIX = '.pending';
export const LOCK_KEY = 'synapse-backup.lock';
/** The random part of a staging key, `<key>.<token>.partial`: without one, a key is not a staging object of ours. */
export const STAGING_TOKEN_PATTERN = /^[0-9a-f]{8,64}$/;

export const COMPRESSION_EXTENSIONS = {gzip: '.gz', zstd: '.zst'} as const;
export type CompressionAlgorithm = keyof typeof COMPRESSION_EXTENSIONS;

export interface BackupNameParts {
  readonly type: BackupType;
  /** When the backup started, UTC, whole seconds. */
  readonly startedAt: Date;
  /** 0 for the first backup of its type in that second; 1, 2... for later ones. */
  readonly sequence: number;
  readonly compression: CompressionAlgorithm;
  readonly encrypted: boolean;
  /** What the file holds before compression: a plain pg_dump (`.sql`) or a pg_basebackup tar (`.tar`). Absent: `.sql`. */
  readonly format?: BackupFormat;
}

/** How a backup was taken: `logical` (pg_dump, one database) or `physical` (pg_basebackup, the cluster, restored with the WAL archive). */
export const BACKUP_METHODS = ['logical', 'physical'] as const;
export type BackupMethod = (typeof BACKUP_METHODS)[number];
export type BackupFormat = 'sql' | 'tar';
export const FORMAT_OF_METHOD: Readonly<Record<BackupMethod, BackupFormat>> = {logical: 'sql', physical: 'tar'};

/** The method a backup's name says it was taken with. */
export function methodOfBackup(parts: Pick<BackupNameParts, 'format'>): BackupMethod {
  return parts.format === 'tar' ? 'physical' : 'logical';
}

const BACKUP_NAME_PATTERN =
  /^backup_(hourly|daily|monthly)_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})(?:_(\d{1,4}))?\.(sql|tar)\.(gz|zst)(\.enc)?$/;

function pad(value: number, width = 2): string {
  return String(value).padStart(width, '0');
}

/** `backup_<type>_<YYYYMMDD>_<HHMMSS>[_<n>].<sql|tar>.<gz|zst>[.enc]`, in UTC. */
export function formatBackupName(parts: BackupNameParts): string {
  const at = parts.startedAt;
  const date = `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}`;
  const time = `${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}`;
  const sequence = parts.sequence > 0 ? `_${parts.sequence}` : '';
  const encryption = parts.encrypted ? '.enc' : '';
  return `backup_${parts.type}_${date}_${time}${sequence}.${parts.format ?? 'sql'}${COMPRESSION_EXTENSIONS[parts.compression]}${encryption}`;
}

export function parseBackupName(name: string): BackupNameParts | undefined {
  const match = BACKUP_NAME_PATTERN.exec(name);
  if (!match) return undefined;
  const [, type, year, month, day, hour, minute, second, sequence, format, extension, encrypted] = match;
  const startedAt = new Date(Date.UTC(+year!, +month! - 1, +day!, +hour!, +minute!, +second!));
  // Reject names such as 20260230 that Date would silently roll over into March.
  if (startedAt.getUTCDate() !== +day! || startedAt.getUTCMonth() !== +month! - 1 || +hour! > 23 || +minute! > 59 || +second! > 59) {
    return undefined;
  }
  return {
    type: type as BackupType,
    startedAt,
    sequence: sequence ? Number(sequence) : 0,
    compression: extension === 'zst' ? 'zstd' : 'gzip',
    encrypted: encrypted !== undefined,
    format: format as BackupFormat,
  };
}

export function isBackupName(name: string): boolean {
  return parseBackupName(name) !== undefined;
}

export function metadataKeyFor(backupName: string): string {
  return `${backupName}${METADATA_SUFFIX}`;
}

export function verificationKeyFor(backupName: string): string {
  return `${backupName}${VERIFICATION_SUFFIX}`;
}

export function pendingKeyFor(backupName: string): string {
  return `${backupName}${PENDING_SUFFIX}`;
}

/** The backup a companion key (metadata, verification record, pending marker) belongs to, if any. */
function companionOf(key: string, suffix: string): string | undefined {
  if (!key.endsWith(suffix)) return undefined;
  const backupName = key.slice(0, -suffix.length);
  return isBackupName(backupName) ? backupName : undefined;
}

export type StoredKeyKind =
  | {readonly kind: 'backup'; readonly name: string; readonly parts: BackupNameParts}
  | {readonly kind: 'metadata'; readonly backupName: string}
  | {readonly kind: 'verification'; readonly backupName: string}
  | {readonly kind: 'pending'; readonly backupName: string}
  | {readonly kind: 'staging'; readonly finalKey: string}
  | {readonly kind: 'lock'}
  | {readonly kind: 'probe'}
  | {readonly kind: 'journal'}
  | {readonly kind: 'foreign'};

/** What `check` writes to prove the storage writable, deleted at once; one a killed check left is cleanup's. */
export const PROBE_KEY_PATTERN = /^synapse-backup-check\.[0-9a-f]{12}\.probe$/;

/** One entry of the run journal: `synapse-backup.journal.<UTC time to the ms>.<token>.json`, so keys sort by time. */
export const JOURNAL_KEY_PATTERN = /^synapse-backup\.journal\.\d{8}T\d{9}Z\.[0-9a-f]{8}\.json$/;

export function journalKey(at: Date, token: string): string {
  const stamp = at.toISOString().replaceAll(/[-:.]/g, '');
  return `synapse-backup.journal.${stamp}.${token}.json`;
}

export function probeKey(token: string): string {
  return `synapse-backup-check.${token}.probe`;
}

/**
 * What a key found in storage is. Only keys this tool writes are ever classified as anything but
 * 'foreign', which is what keeps cleanup from deleting files it did not create. Every pattern is
 * anchored at the start of the key, so nothing in an area (`wal/`) is ever taken for a backup's.
 */
export function classifyKey(key: string): StoredKeyKind {
  if (key === LOCK_KEY) return {kind: 'lock'};
  if (PROBE_KEY_PATTERN.test(key)) return {kind: 'probe'};
  if (JOURNAL_KEY_PATTERN.test(key)) return {kind: 'journal'};
  if (key.endsWith(STAGING_SUFFIX)) {
    const withoutSuffix = key.slice(0, -STAGING_SUFFIX.length);
    const tokenStart = withoutSuffix.lastIndexOf('.');
    const finalKey = tokenStart > 0 ? withoutSuffix.slice(0, tokenStart) : '';
    const token = withoutSuffix.slice(tokenStart + 1);
    const ours = STAGING_TOKEN_PATTERN.test(token) && (finalKey === LOCK_KEY || classifyKey(finalKey).kind !== 'foreign');
    return ours ? {kind: 'staging', finalKey} : {kind: 'foreign'};
  }
  for (const [suffix, kind] of [[METADATA_SUFFIX, 'metadata'], [VERIFICATION_SUFFIX, 'verification'], [PENDING_SUFFIX, 'pending']] as const) {
    if (!key.endsWith(suffix)) continue;
    const backupName = companionOf(key, suffix);
    return backupName ? {kind, backupName} : {kind: 'foreign'};
  }
  const parts = parseBackupName(key);
  return parts ? {kind: 'backup', name: key, parts} : {kind: 'foreign'};
}

/** The first name not in `taken` for a backup of this type started at `startedAt`. */
export function nextFreeBackupName(base: Omit<BackupNameParts, 'sequence'>, taken: ReadonlySet<string>): string {
  for (let sequence = 0; sequence < 10_000; sequence++) {
    const name = formatBackupName({...base, sequence});
    if (!taken.has(name) && !taken.has(metadataKeyFor(name)) && !taken.has(pendingKeyFor(name))) return name;
  }
  throw new Error('no free backup name left in this second');
}
