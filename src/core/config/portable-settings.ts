import path from 'node:path';

import type {Settings} from './settings.js';

/**
 * The settings another process (the server's `restore_command`, run by the server's user in the
 * data directory with the server's environment) needs to read the same archive the same way, as
 * variable assignments that hold no secret: every location spelt out in BACKUP_LOCATIONS with
 * absolute paths, the key file's path, the cipher's settings. What cannot travel (a key given in
 * BACKUP_ENCRYPTION_KEY, S3 credentials in the environment) is named in `serverNeeds`.
 */
export interface PortableSettings {
  readonly assignments: ReadonlyArray<readonly [string, string]>;
  /** What the server's environment must provide itself, each with why. */
  readonly serverNeeds: readonly string[];
}

/** The query parameter of an s3:// location each of its own settings is written as. */
const S3_URL_PARAMETERS: Readonly<Record<string, string>> = {
  BACKUP_S3_ENDPOINT: 'endpoint',
  BACKUP_S3_REGION: 'region',
  AWS_PROFILE: 'profile',
  BACKUP_S3_FORCE_PATH_STYLE: 'force-path-style',
  BACKUP_S3_STORAGE_CLASS: 'storage-class',
  BACKUP_S3_SSE: 'sse',
  BACKUP_S3_SSE_KMS_KEY_ID: 'sse-kms-key-id',
};

/** S3 settings of a single location given through the environment (BACKUP_STORAGE=s3), carried as they are. */
const S3_ENVIRONMENT = ['BACKUP_S3_BUCKET', 'BACKUP_S3_PREFIX', 'BACKUP_S3_ENDPOINT', 'BACKUP_S3_REGION', 'BACKUP_S3_FORCE_PATH_STYLE', 'AWS_PROFILE', 'AWS_REGION', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE'];

export function portableSettings(settings: Settings, cwd: string): PortableSettings {
  const env = settings.env;
  const assignments: Array<readonly [string, string]> = [];
  const serverNeeds: string[] = [];
  const entries = settings.locations.map((location) => {
    if (location.scheme !== 's3' || !('BACKUP_S3_BUCKET' in location.env)) return `${location.name}=${location.scheme}:${location.location}`;
    const query = Object.entries(S3_URL_PARAMETERS)
      .filter(([variable]) => location.env[variable] !== undefined)
      .map(([variable, parameter]) => `${parameter}=${encodeURIComponent(location.env[variable]!)}`);
    return `${location.name}=s3://${location.env.BACKUP_S3_BUCKET}/${location.env.BACKUP_S3_PREFIX ?? ''}${query.length > 0 ? `?${query.join('&')}` : ''}`;
  });
  assignments.push(['BACKUP_LOCATIONS', entries.join(',')]);
  if (settings.locations.some((location) => location.scheme === 's3')) {
    for (const variable of S3_ENVIRONMENT) if (env[variable]?.trim()) assignments.push([variable, env[variable]!.trim()]);
    if (env.AWS_ACCESS_KEY_ID?.trim()) serverNeeds.push('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (S3 credentials are secrets and are not written into the settings; better, a profile in the server user\'s ~/.aws/credentials with AWS_PROFILE)');
  }
  if (settings.encryption) {
    const keyFile = env.BACKUP_ENCRYPTION_KEY_FILE?.trim();
    if (keyFile) assignments.push(['BACKUP_ENCRYPTION_KEY_FILE', path.resolve(cwd, keyFile)]);
    else serverNeeds.push('BACKUP_ENCRYPTION_KEY (the key came from the environment and is never written into the settings; better, write it to a file the server\'s user alone can read and set BACKUP_ENCRYPTION_KEY_FILE)');
    for (const variable of ['BACKUP_ENCRYPTION_ITERATIONS', 'BACKUP_ENCRYPTION_PROVIDER']) if (env[variable]?.trim()) assignments.push([variable, env[variable]!.trim()]);
  }
  return {assignments, serverNeeds};
}

/** A word for sh: single-quoted unless it is made of characters sh leaves alone. */
export function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

/** `NAME=value ... <command> <args>`, for sh. */
export function shellCommand(assignments: PortableSettings['assignments'], command: readonly string[]): string {
  return [...assignments.map(([name, value]) => `${name}=${shellWord(value)}`), ...command.map((word) => shellWord(word))].join(' ');
}

/**
 * `NAME=value ... <command> <args>`, for sh, as PostgreSQL's restore_command and archive_command
 * take it: `%f` and `%p` are left for the server to fill in, and every other `%` doubled, since
 * the server would read `%x` in a path as one of its own.
 */
export function serverCommand(assignments: PortableSettings['assignments'], command: readonly string[]): string {
  const escape = (word: string): string => shellWord(word).replaceAll('%', '%%');
  return [...assignments.map(([name, value]) => `${name}=${escape(value)}`), ...command.map((word) => (word === '%f' || word === '%p' ? word : escape(word)))].join(' ');
}
