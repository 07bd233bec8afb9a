import type {Config} from '@oclif/core';
import {parse as parseDotenv} from 'dotenv';
import {readFileSync} from 'node:fs';
import path from 'node:path';

import type {EncryptionProvider} from '../contracts/encryption.js';
import type {StorageBackend} from '../contracts/storage.js';
import {locationEnvironment, resolveSettings, type LocationSpec, type SettingGroup, type Settings} from '../core/config/index.js';
import {SynapseError, errnoCode, isSynapseError} from '../core/errors/index.js';
import type {EventFacts} from '../core/notify/index.js';
// The one class, not the index: that loads pg and execa for every command.
import {DatabaseTarget} from '../core/postgres/database-target.js';
import {DEFAULT_RETRY_DELAYS_MS, boundOperation, withOperationBounds, withOperationLog, withRetries} from '../core/storage/index.js';
import type {Location, LocationFailure} from '../core/replication/index.js';
import {discoverEncryptionProviders, discoverStorageBackends, pluginDirectoryVerdict} from './plugin-host/index.js';

/** The .env file of the working directory, if any; read, never merged into process.env. */
export function readDotenvFile(cwd: string): Record<string, string> {
  const file = path.join(cwd, '.env');
  try {
    return parseDotenv(readFileSync(file));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return {};
    throw new SynapseError('E_CONFIG', {message: `unable to read '${file}': ${(error as Error).message}`});
  }
}

/**
 * The configuration environment as settings read it (the real environment over ./.env), for what
 * must work before and without valid settings: notifications. Never fails.
 */
export function configurationEnvironment(): Record<string, string | undefined> {
  let dotenv: Record<string, string> = {};
  try {
    dotenv = readDotenvFile(process.cwd());
  } catch {
    // An unreadable .env is reported by the settings; the real environment is still there.
  }
  return {...dotenv, ...process.env};
}

/** Which database and storage a run is about, as far as the raw configuration says, for the events of a run that fails before its settings are valid. */
export function guessOperationFacts(): Pick<EventFacts, 'database' | 'storage'> {
  const env = configurationEnvironment();
  let database: string | undefined;
  try {
    database = DatabaseTarget.fromEnvironment(env).database;
  } catch {
    // A malformed DATABASE_URL: the failure event says so in its error.
  }
  return {
    ...(database ? {database} : {}),
    storage: {scheme: env.BACKUP_STORAGE?.trim() || 'local', location: path.resolve(process.cwd(), env.BACKUP_DIR?.trim() || './backups')},
  };
}

export function loadSettings(uses: readonly SettingGroup[]): Settings {
  const cwd = process.cwd();
  return resolveSettings({process: process.env, dotenv: readDotenvFile(cwd), cwd}, {uses});
}

export interface OpenStorageOptions {
  readonly create?: boolean;
  readonly signal?: AbortSignal;
  readonly onWarning?: (message: string) => void;
}

/**
 * The primary location's storage. Only `backup run` creates a missing location (`create`); every
 * other command reports a missing or wrong one the same way.
 */
export function openStorage(config: Config, settings: Settings, access: 'read' | 'read-write', options: OpenStorageOptions = {}): Promise<StorageBackend> {
  return openLocationStorage(config, settings, settings.locations[0]!, access, options);
}

/**
 * Every configured location, opened on its own: one that cannot be opened is a failure named with
 * its location, and the others are still there to use.
 */
export async function openLocations(config: Config, settings: Settings, access: 'read' | 'read-write', options: OpenStorageOptions = {}): Promise<{opened: Location[]; failed: LocationFailure[]}> {
  const attempts = await Promise.allSettled(settings.locations.map(async (spec) => ({name: spec.name, storage: await openLocationStorage(config, settings, spec, access, options)})));
  const opened: Location[] = [];
  const failed: LocationFailure[] = [];
  attempts.forEach((attempt, index) => {
    if (attempt.status === 'fulfilled') opened.push(attempt.value);
    else failed.push({location: settings.locations[index]!.name, error: attempt.reason as Error});
  });
  return {opened, failed};
}

/**
 * Every location where several are configured (see openLocations); the single one otherwise,
 * whose failure to open is the command's failure, worded as it always was.
 */
export async function openEveryLocation(config: Config, settings: Settings, access: 'read' | 'read-write', options: OpenStorageOptions = {}): Promise<{opened: Location[]; failed: LocationFailure[]}> {
  if (settings.locations.length > 1) {
    const located = await openLocations(config, settings, access, options);
    for (const failure of located.failed) options.onWarning?.(`location '${failure.location}' could not be opened: ${failure.error.message}`);
    if (located.opened.length === 0) throw located.failed[0]!.error;
    return located;
  }
  return {opened: [{name: settings.locations[0]!.name, storage: await openStorage(config, settings, access, options)}], failed: []};
}

/** One location's storage: its plugin, with that location's settings over the shared ones. */
export async function openLocationStorage(config: Config, settings: Settings, spec: LocationSpec, access: 'read' | 'read-write', options: OpenStorageOptions = {}): Promise<StorageBackend> {
  // Messages name the location where there are several: 'offsite' says more than a bucket URL.
  const named = settings.locations.length > 1 ? ` (location '${spec.name}')` : '';
  const where = `${spec.location}${named}`;
  const backends = await discoverStorageBackends(config);
  const found = backends.get(spec.scheme);
  if (!found) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to use ${named ? `the storage '${spec.scheme}'${named}` : `BACKUP_STORAGE '${spec.scheme}'`}: no installed plugin provides it (available: ${[...backends.keys()].sort().join(', ') || 'none'})${pluginDirectoryVerdict().refusal ? `; ${pluginDirectoryVerdict().refusal}` : ''}`,
      suggestion: pluginDirectoryVerdict().refusal
        ? 'Fix the owner and modes of the plugin directory as the message says; the plugin providing this backend is there.'
        : 'Install the storage plugin with `synapse-backup plugins install <name>` or pick one of the available backends.',
    });
  }
  try {
    const bounds = {timeoutMs: settings.storageTimeoutMs, signal: options.signal};
    const storage = await boundOperation(
      () => found.registration.create({location: spec.location, env: locationEnvironment(settings.env, spec), access, create: options.create === true}),
      `open backup storage '${where}'`,
      spec.location,
      bounds,
    );
    // Restic style, each concern a wrapper with the backend's interface: every call logged under
    // DEBUG, transient failures of idempotent calls retried (and said), the whole bounded in time.
    const logged = process.env.DEBUG ? withOperationLog(storage, (line) => process.stderr.write(`${new Date().toISOString()} debug ${line}\n`)) : storage;
    const retried = withRetries(logged, {
      delaysMs: DEFAULT_RETRY_DELAYS_MS,
      signal: options.signal,
      onRetry: (what, error, attempt, attempts) =>
        options.onWarning?.(`the storage failed to ${what} (${errnoCode(error) ?? 'transient'}: ${(error as Error).message}); trying again (attempt ${attempt} of ${attempts})`),
    });
    return withOperationBounds(retried, bounds);
  } catch (error) {
    if (isSynapseError(error)) throw error;
    const code = errnoCode(error);
    const reason = (error as Error).message;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new SynapseError('E_STORAGE_UNWRITABLE', {message: `unable to open backup directory '${where}': ${reason}`, cause: error});
    }
    if (code === 'ENOENT') {
      throw new SynapseError('E_STORAGE', {
        message: options.create
          ? `unable to create backup storage '${where}': ${reason}`
          : `unable to open backup storage '${where}': it does not exist`,
        suggestion: options.create
          ? 'Point BACKUP_DIR at a directory that can exist on this machine (its parent must be a real, writable directory).'
          : 'Check BACKUP_DIR (or BACKUP_STORAGE); `backup run` creates the directory on its first backup.',
        cause: error,
      });
    }
    if (code === 'ENOTDIR') {
      throw new SynapseError('E_STORAGE', {
        message: `unable to open backup storage '${where}': ${reason}`,
        suggestion: 'Point BACKUP_DIR at a directory, not a file.',
        cause: error,
      });
    }
    throw new SynapseError('E_STORAGE', {message: `unable to open backup storage '${where}': ${reason}`, cause: error});
  }
}

export async function loadEncryptionProviders(config: Config): Promise<Map<string, EncryptionProvider>> {
  const discovered = await discoverEncryptionProviders(config);
  return new Map([...discovered].map(([id, {registration}]) => [id, registration]));
}
