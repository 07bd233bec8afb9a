/** How the S3 backend is configured: BACKUP_S3_* in the configuration environment, read once, checked whole. */
export interface S3Settings {
  readonly bucket: string;
  /** '' or a prefix ending in '/'. */
  readonly prefix: string;
  readonly endpoint: string | undefined;
  readonly region: string;
  /** The credentials profile to read (AWS_PROFILE); the SDK's default chain when undefined. */
  readonly profile: string | undefined;
  readonly forcePathStyle: boolean;
  readonly storageClass: string | undefined;
  /** The first part of a multipart upload, in bytes; later parts grow unless `fixedPartSize`. */
  readonly partSize: number;
  /** Providers such as Cloudflare R2 want every part but the last of one size: no growth, and a largest object of partSize × maxParts. */
  readonly fixedPartSize: boolean;
  /** Parts uploaded at once: memory is about partSize × (partsInFlight + 1). */
  readonly partsInFlight: number;
  /** S3 allows 10,000 parts, some providers 1,000. */
  readonly maxParts: number;
  readonly listPageSize: number;
  readonly connectTimeoutMs: number;
  /** How long one request may go without a byte moving. */
  readonly requestTimeoutMs: number;
  readonly maxAttempts: number;
  /** Object Lock retention set on each backup and its metadata, in days; undefined: none. */
  readonly objectLockDays: number | undefined;
  readonly objectLockMode: 'COMPLIANCE' | 'GOVERNANCE';
  /** Server-side encryption the bucket applies on top of ours: SSE-S3 (AES256) or SSE-KMS with a key. */
  readonly serverSideEncryption: {readonly algorithm: 'AES256'} | {readonly algorithm: 'aws:kms'; readonly kmsKeyId: string | undefined} | undefined;
}

const MIB = 1024 * 1024;
/** S3's own bounds for a part: at least 5 MiB (but the last), at most 5 GiB. */
export const MIN_PART_SIZE = 5 * MIB;
export const MAX_PART_SIZE = 5 * 1024 * MIB;

export const DEFAULT_S3_SETTINGS = {
  region: 'us-east-1',
  partSize: 8 * MIB,
  partsInFlight: 2,
  maxParts: 10_000,
  listPageSize: 1000,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
  maxAttempts: 5,
} as const;

function fail(message: string): never {
  throw Object.assign(new Error(message), {code: 'EINVAL'});
}

function integer(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number, minimum: number, maximum: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const match = /^(\d+)\s*(k|m|g|kib|mib|gib)?$/i.exec(raw);
  const unit = match?.[2]?.toLowerCase().charAt(0);
  const value = match ? Number(match[1]) * (unit === 'k' ? 1024 : unit === 'm' ? MIB : unit === 'g' ? 1024 * MIB : 1) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < minimum || value > maximum) fail(`BACKUP_S3: ${name} '${raw}' must be a whole number from ${minimum} to ${maximum}`);
  return value;
}

function boolean(env: Readonly<Record<string, string | undefined>>, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return fallback;
  if (['true', 'yes', '1', 'on'].includes(raw)) return true;
  if (['false', 'no', '0', 'off'].includes(raw)) return false;
  return fail(`${name} '${env[name]}' must be true or false`);
}

function serverSideEncryption(raw: string | undefined, keyId: string | undefined): S3Settings['serverSideEncryption'] {
  const mode = raw?.trim().toLowerCase();
  const key = keyId?.trim() || undefined;
  if (!mode) {
    if (key) fail('BACKUP_S3_SSE_KMS_KEY_ID is set, but BACKUP_S3_SSE is not: set BACKUP_S3_SSE=kms');
    return undefined;
  }
  if (mode === 's3' || mode === 'aes256') {
    if (key) fail('BACKUP_S3_SSE_KMS_KEY_ID goes with BACKUP_S3_SSE=kms, not with SSE-S3');
    return {algorithm: 'AES256'};
  }
  if (mode === 'kms' || mode === 'aws:kms') return {algorithm: 'aws:kms', kmsKeyId: key};
  return fail(`BACKUP_S3_SSE '${raw}' must be s3 (SSE-S3) or kms (SSE-KMS, with BACKUP_S3_SSE_KMS_KEY_ID or the bucket's default key)`);
}

function objectLockMode(raw: string | undefined): 'COMPLIANCE' | 'GOVERNANCE' {
  const mode = raw?.trim().toUpperCase() || 'COMPLIANCE';
  if (mode !== 'COMPLIANCE' && mode !== 'GOVERNANCE') fail(`BACKUP_S3_OBJECT_LOCK_MODE '${raw}' must be COMPLIANCE (no one can shorten it) or GOVERNANCE (a user with s3:BypassGovernanceRetention can)`);
  return mode;
}

export function readS3Settings(env: Readonly<Record<string, string | undefined>>): S3Settings {
  const bucket = env.BACKUP_S3_BUCKET?.trim();
  if (!bucket) fail('BACKUP_S3_BUCKET is not set: name the bucket the backups go to');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) fail(`BACKUP_S3_BUCKET '${bucket}' is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)`);
  const rawPrefix = (env.BACKUP_S3_PREFIX ?? '').trim().replace(/^\/+/, '');
  if (rawPrefix.split('/').some((part) => part === '..' || part === '.')) fail(`BACKUP_S3_PREFIX '${rawPrefix}' may not hold '.' or '..'`);
  const prefix = rawPrefix === '' || rawPrefix.endsWith('/') ? rawPrefix : `${rawPrefix}/`;
  const endpoint = env.BACKUP_S3_ENDPOINT?.trim() || undefined;
  if (endpoint) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      fail(`BACKUP_S3_ENDPOINT '${endpoint}' is not a URL (https://s3.example.com)`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(`BACKUP_S3_ENDPOINT must start with https:// or http://, not ${url.protocol}`);
    if (url.username || url.password) fail('BACKUP_S3_ENDPOINT must not hold credentials: they come from the AWS SDK\'s chain (AWS_ACCESS_KEY_ID, a profile, ...)');
  }
  const partSize = integer(env, 'BACKUP_S3_PART_SIZE', DEFAULT_S3_SETTINGS.partSize, MIN_PART_SIZE, MAX_PART_SIZE);
  return {
    bucket,
    prefix,
    endpoint,
    region: env.BACKUP_S3_REGION?.trim() || env.AWS_REGION?.trim() || DEFAULT_S3_SETTINGS.region,
    // The credentials profile of this location (AWS_PROFILE, or an s3:// location's ?profile=): the SDK then reads that profile, not AWS_ACCESS_KEY_ID.
    profile: env.AWS_PROFILE?.trim() || undefined,
    // Anything but AWS is usually addressed by path (http://host/bucket/key).
    forcePathStyle: boolean(env, 'BACKUP_S3_FORCE_PATH_STYLE', endpoint !== undefined),
    storageClass: env.BACKUP_S3_STORAGE_CLASS?.trim() || undefined,
    partSize,
    fixedPartSize: boolean(env, 'BACKUP_S3_FIXED_PART_SIZE', false),
    partsInFlight: integer(env, 'BACKUP_S3_PARTS_IN_FLIGHT', DEFAULT_S3_SETTINGS.partsInFlight, 1, 16),
    maxParts: integer(env, 'BACKUP_S3_MAX_PARTS', DEFAULT_S3_SETTINGS.maxParts, 2, 10_000),
    listPageSize: integer(env, 'BACKUP_S3_LIST_PAGE_SIZE', DEFAULT_S3_SETTINGS.listPageSize, 1, 1000),
    connectTimeoutMs: integer(env, 'BACKUP_S3_CONNECT_TIMEOUT_MS', DEFAULT_S3_SETTINGS.connectTimeoutMs, 100, 600_000),
    requestTimeoutMs: integer(env, 'BACKUP_S3_REQUEST_TIMEOUT_MS', DEFAULT_S3_SETTINGS.requestTimeoutMs, 100, 3_600_000),
    maxAttempts: integer(env, 'BACKUP_S3_MAX_ATTEMPTS', DEFAULT_S3_SETTINGS.maxAttempts, 1, 10),
    objectLockDays: env.BACKUP_S3_OBJECT_LOCK_DAYS?.trim() ? integer(env, 'BACKUP_S3_OBJECT_LOCK_DAYS', 0, 1, 36_500) : undefined,
    objectLockMode: objectLockMode(env.BACKUP_S3_OBJECT_LOCK_MODE),
    serverSideEncryption: serverSideEncryption(env.BACKUP_S3_SSE, env.BACKUP_S3_SSE_KMS_KEY_ID),
  };
}

/**
 * The size of part `number` (1-based). Growing parts let a stream of unknown length fit S3's part
 * limit whatever its size: each tenth of the allowed parts doubles the size (pgBackRest 2.58 grows
 * its chunks for the same reason), capped at S3's 5 GiB. With 8 MiB and 10,000 parts that is about
 * 8 TiB; a fixed part size allows partSize × maxParts.
 */
export function partSizeFor(number: number, settings: Pick<S3Settings, 'partSize' | 'fixedPartSize' | 'maxParts'>): number {
  if (settings.fixedPartSize) return settings.partSize;
  const step = Math.max(1, Math.floor(settings.maxParts / 10));
  return Math.min(MAX_PART_SIZE, settings.partSize * 2 ** Math.floor((number - 1) / step));
}

/** The largest object the settings allow, for messages and the README. */
export function largestObject(settings: Pick<S3Settings, 'partSize' | 'fixedPartSize' | 'maxParts'>): number {
  let total = 0;
  for (let number = 1; number <= settings.maxParts; number++) total += partSizeFor(number, settings);
  return total;
}
