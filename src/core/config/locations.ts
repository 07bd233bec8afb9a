import path from 'node:path';

import {SynapseError} from '../errors/index.js';

/**
 * One place the backups go to: a storage plugin's scheme, its location, and the settings that
 * differ for it (an S3 location's bucket, endpoint, region and credentials profile).
 */
export interface LocationSpec {
  /** Stable, for every message, `--json` result, event and metric: `primary`, or as given. */
  readonly name: string;
  readonly scheme: string;
  readonly location: string;
  /** Settings of this location's own, laid over the configuration environment for its plugin. */
  readonly env: Readonly<Record<string, string>>;
}

export const PRIMARY_LOCATION = 'primary';
const LOCATION_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * What an S3 location's URL sets, and so what it never inherits from the environment (the bucket,
 * prefix, endpoint, region and profile of BACKUP_S3_* and AWS_* are the single location's): an AWS
 * location beside a second provider's must not pick up that provider's endpoint.
 */
const S3_LOCATION_OWN = ['BACKUP_S3_BUCKET', 'BACKUP_S3_PREFIX', 'BACKUP_S3_ENDPOINT', 'BACKUP_S3_REGION', 'BACKUP_S3_FORCE_PATH_STYLE', 'AWS_PROFILE', 'AWS_REGION'] as const;

/** Query parameters an s3:// location takes: `endpoint=` is BACKUP_S3_ENDPOINT, and so on; `profile=` is AWS_PROFILE. */
const S3_PARAMETERS: Readonly<Record<string, string>> = {
  endpoint: 'BACKUP_S3_ENDPOINT',
  region: 'BACKUP_S3_REGION',
  profile: 'AWS_PROFILE',
  'force-path-style': 'BACKUP_S3_FORCE_PATH_STYLE',
  'storage-class': 'BACKUP_S3_STORAGE_CLASS',
  sse: 'BACKUP_S3_SSE',
  'sse-kms-key-id': 'BACKUP_S3_SSE_KMS_KEY_ID',
  'object-lock-days': 'BACKUP_S3_OBJECT_LOCK_DAYS',
  'object-lock-mode': 'BACKUP_S3_OBJECT_LOCK_MODE',
};

function invalid(message: string): SynapseError {
  return new SynapseError('E_CONFIG', {
    message: `BACKUP_LOCATIONS: ${message}`,
    suggestion:
      'Give the locations separated by commas, the primary first, each as [name=]scheme:location: `local:/var/backups/pg,offsite=s3://bucket/pg?region=eu-west-1&profile=offsite,nas=mount:/mnt/nas/pg`.',
  });
}

function s3Location(url: string): {location: string; env: Record<string, string>} {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`'${url}' is not an s3://bucket/prefix URL`);
  }
  if (parsed.username || parsed.password) throw invalid(`'s3://${parsed.host}${parsed.pathname}' holds credentials: they never go in a setting; name a profile with ?profile= (see the README)`);
  const bucket = parsed.hostname;
  if (!bucket) throw invalid(`'${url}' names no bucket (s3://bucket/prefix)`);
  const prefix = decodeURIComponent(parsed.pathname.replace(/^\/+/, ''));
  const env: Record<string, string> = {BACKUP_S3_BUCKET: bucket, BACKUP_S3_PREFIX: prefix};
  for (const [parameter, value] of parsed.searchParams) {
    const variable = S3_PARAMETERS[parameter];
    if (!variable) throw invalid(`'${parameter}' is not a setting of an s3:// location (${Object.keys(S3_PARAMETERS).join(', ')}); credentials go in a profile, never in the URL`);
    env[variable] = value;
  }
  // The location as messages show it: never a query, which may name a profile or a key id.
  return {location: `s3://${bucket}/${prefix}`, env};
}

function parseEntry(entry: string, index: number, cwd: string): LocationSpec {
  const named = /^([a-z][a-z0-9-]*)=(.*)$/.exec(entry);
  const name = named ? named[1]! : index === 0 ? PRIMARY_LOCATION : `location-${index + 1}`;
  if (!LOCATION_NAME.test(name)) throw invalid(`'${name}' is not a location name (a lowercase letter, then up to 31 lowercase letters, digits and '-')`);
  const spec = (named ? named[2]! : entry).trim();
  if (spec.startsWith('s3://')) return {name, scheme: 's3', ...s3Location(spec)};
  if (spec.startsWith('/')) return {name, scheme: 'local', location: path.resolve(spec), env: {}};
  const scheme = /^([a-z][a-z0-9-]*):(.+)$/.exec(spec);
  if (!scheme) throw invalid(`'${spec}' names no storage: write scheme:location (local:/var/backups/pg, mount:/mnt/nas/pg, s3fs:/mnt/s3) or s3://bucket/prefix`);
  const [, backend, where] = scheme;
  // Every backend but S3 takes a directory (a plugin's may take anything else as it likes).
  const location = where!.startsWith('/') || where!.startsWith('.') ? path.resolve(cwd, where!) : where!;
  return {name, scheme: backend!, location, env: {}};
}

/**
 * BACKUP_LOCATIONS as locations, the primary first; without it, the single location of
 * BACKUP_STORAGE and BACKUP_DIR, named `primary`.
 */
export function parseLocations(value: string | undefined, single: {readonly scheme: string; readonly location: string}, cwd: string): LocationSpec[] {
  if (value === undefined || value.trim() === '') return [{name: PRIMARY_LOCATION, scheme: single.scheme, location: single.location, env: {}}];
  const entries = value.split(',').map((entry) => entry.trim());
  if (entries.some((entry) => entry === '')) throw invalid(`'${value}' has an empty entry`);
  const locations = entries.map((entry, index) => parseEntry(entry, index, cwd));
  const names = new Set<string>();
  const places = new Set<string>();
  for (const location of locations) {
    if (names.has(location.name)) throw invalid(`the name '${location.name}' is given to two locations`);
    const place = `${location.scheme}:${location.location}`;
    if (places.has(place)) throw invalid(`'${place}' is listed twice: a second copy in the same place is no copy`);
    names.add(location.name);
    places.add(place);
  }
  return locations;
}

/** The configuration environment of one location's plugin: its own settings over the shared ones, which an S3 URL's settings replace whole. */
export function locationEnvironment(shared: Readonly<Record<string, string | undefined>>, location: LocationSpec): Record<string, string | undefined> {
  const base = {...shared};
  if (location.scheme === 's3' && 'BACKUP_S3_BUCKET' in location.env) for (const variable of S3_LOCATION_OWN) delete base[variable];
  return {...base, ...location.env};
}
