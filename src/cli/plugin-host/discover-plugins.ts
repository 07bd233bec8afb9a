import type {Config} from '@oclif/core';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import {HOOK_ENCRYPTION_PROVIDERS, HOOK_STORAGE_BACKENDS, type SynapseHookRegistrations} from '../../contracts/hooks.js';
import type {StorageBackendFactory} from '../../contracts/storage.js';
import {SynapseError} from '../../core/errors/index.js';

type HookName = keyof SynapseHookRegistrations;
type Registration<K extends HookName> = SynapseHookRegistrations[K] extends infer R ? (R extends Array<infer Item> ? Item : R) : never;

export interface Discovered<T> {
  readonly registration: T;
  readonly plugin: string;
}

const HOOK_TIMEOUT_MS = 10_000;

/**
 * Asks every plugin's hook for its registrations and keys them by `keyOf`. Hooks run in parallel and
 * answer in completion order, so the result is built by key; two plugins claiming the same key,
 * a malformed registration or a hook that throws is an E_PLUGIN error naming the plugin.
 */
async function discover<K extends HookName>(
  config: Config,
  hook: K,
  describe: string,
  isValid: (candidate: unknown) => candidate is Registration<K>,
  keyOf: (registration: Registration<K>) => string,
): Promise<Map<string, Discovered<Registration<K>>>> {
  const outcome = await config.runHook(hook, {}, HOOK_TIMEOUT_MS, true);
  if (outcome.failures.length > 0) {
    const {plugin, error} = outcome.failures[0]!;
    throw new SynapseError('E_PLUGIN', {message: `unable to load ${describe} from plugin '${plugin.name}': ${error.message}`, cause: error});
  }
  const found = new Map<string, Discovered<Registration<K>>>();
  for (const {plugin, result} of outcome.successes) {
    if (result === undefined || result === null) continue;
    const registrations: unknown[] = Array.isArray(result) ? result : [result];
    for (const registration of registrations) {
      if (!isValid(registration)) {
        throw new SynapseError('E_PLUGIN', {message: `unable to load ${describe} from plugin '${plugin.name}': its '${hook}' hook returned something that is not a ${describe}`});
      }
      const key = keyOf(registration);
      const earlier = found.get(key);
      if (earlier) {
        throw new SynapseError('E_PLUGIN', {
          message: `unable to choose a ${describe} for '${key}': both '${earlier.plugin}' and '${plugin.name}' provide it`,
          suggestion: `Uninstall one of them with \`synapse-backup plugins uninstall <name>\`.`,
        });
      }
      found.set(key, {registration, plugin: plugin.name});
    }
  }
  return found;
}

function isStorageFactory(candidate: unknown): candidate is StorageBackendFactory {
  const value = candidate as Partial<StorageBackendFactory> | undefined;
  return typeof value?.scheme === 'string' && value.scheme !== '' && typeof value.create === 'function';
}

function isEncryptionProvider(candidate: unknown): candidate is EncryptionProvider {
  const value = candidate as Partial<EncryptionProvider> | undefined;
  return (
    typeof value?.id === 'string' &&
    typeof value.fileSuffix === 'string' &&
    typeof value.describe === 'function' &&
    typeof value.createEncryptStream === 'function' &&
    typeof value.createDecryptStream === 'function'
  );
}

export function discoverStorageBackends(config: Config): Promise<Map<string, Discovered<StorageBackendFactory>>> {
  return discover(config, HOOK_STORAGE_BACKENDS, 'storage backend', isStorageFactory, (factory) => factory.scheme);
}

export function discoverEncryptionProviders(config: Config): Promise<Map<string, Discovered<EncryptionProvider>>> {
  return discover(config, HOOK_ENCRYPTION_PROVIDERS, 'encryption provider', isEncryptionProvider, (provider) => provider.id);
}
