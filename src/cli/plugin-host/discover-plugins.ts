import type {Config} from '@oclif/core';
import semver from 'semver';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import {HOOK_ENCRYPTION_PROVIDERS, HOOK_NOTIFICATION_SINKS, HOOK_STORAGE_BACKENDS, type SynapseHookRegistrations} from '../../contracts/hooks.js';
import type {NotificationSinkFactory} from '../../contracts/notification.js';
import {PLUGIN_API_VERSION, PLUGIN_MANIFEST_FIELD} from '../../contracts/plugin-api.js';
import type {StorageBackendFactory} from '../../contracts/storage.js';
import {SynapseError, pluginFailed} from '../../core/errors/index.js';
import type {AvailableSink} from '../../core/notify/index.js';

type HookName = keyof SynapseHookRegistrations;
type Registration<K extends HookName> = SynapseHookRegistrations[K] extends infer R ? (R extends Array<infer Item> ? Item : R) : never;

export interface Discovered<T> {
  readonly registration: T;
  readonly plugin: string;
}

const HOOK_TIMEOUT_MS = 10_000;

/**
 * Why a plugin that registers through `hook` cannot be used with this version of the plugin API,
 * or undefined when it can: it must declare the range it targets (`"synapse-backup":
 * {"pluginApi": "^1.0.0"}` in its package.json), and the range must include ours. oclif has no
 * such handshake; without one, a plugin written against another contract fails in the middle of a
 * backup instead of at load time.
 */
export function incompatiblePlugins(config: Config, hook: HookName): Map<string, string> {
  const refused = new Map<string, string>();
  for (const plugin of config.getPluginsList()) {
    if (!plugin.hooks?.[hook]) continue;
    const declared = (plugin.pjson as unknown as Record<string, {pluginApi?: unknown} | undefined>)[PLUGIN_MANIFEST_FIELD]?.pluginApi;
    const where = `plugin '${plugin.name}'${plugin.version ? ` ${plugin.version}` : ''}`;
    if (typeof declared !== 'string' || semver.validRange(declared) === null) {
      refused.set(
        plugin.name,
        `${where} does not declare a valid plugin API range (package.json "${PLUGIN_MANIFEST_FIELD}": {"pluginApi": "^1.0.0"}; found ${JSON.stringify(declared ?? null)}); this synapse-backup provides plugin API ${PLUGIN_API_VERSION}`,
      );
    } else if (!semver.satisfies(PLUGIN_API_VERSION, declared)) {
      refused.set(plugin.name, `${where} targets plugin API ${declared}, but this synapse-backup provides plugin API ${PLUGIN_API_VERSION}`);
    }
  }
  return refused;
}

function refusal(reason: string): SynapseError {
  return new SynapseError('E_PLUGIN', {
    message: `unable to load ${reason}`,
    suggestion: 'Install a version of the plugin made for this synapse-backup (`synapse-backup plugins install <name>@<version>`), or remove it with `synapse-backup plugins uninstall <name>`.',
  });
}

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
  const incompatible = incompatiblePlugins(config, hook);
  if (incompatible.size > 0) throw refusal([...incompatible.values()][0]!);
  const outcome = await config.runHook(hook, {}, HOOK_TIMEOUT_MS, true);
  if (outcome.failures.length > 0) {
    const {plugin, error} = outcome.failures[0]!;
    throw pluginFailed(`load ${describe} from plugin '${plugin.name}'`, error);
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

function isSinkFactory(candidate: unknown): candidate is NotificationSinkFactory {
  const value = candidate as Partial<NotificationSinkFactory> | undefined;
  return (
    typeof value?.id === 'string' &&
    /^[a-z][a-z0-9-]*$/.test(value.id) &&
    typeof value.activatedBy === 'string' &&
    Array.isArray(value.variables) &&
    typeof value.create === 'function'
  );
}

/**
 * The notification sinks, found without ever failing: a sink plugin that is broken or made for
 * another plugin API is a warning, and the other sinks still report, which matters most when the
 * run itself is failing.
 */
export async function discoverNotificationSinks(config: Config): Promise<{sinks: AvailableSink[]; warnings: string[]}> {
  const warnings: string[] = [];
  const incompatible = incompatiblePlugins(config, HOOK_NOTIFICATION_SINKS);
  for (const reason of incompatible.values()) warnings.push(`unable to load notification sinks from ${reason}; it sends nothing`);
  let outcome;
  try {
    outcome = await config.runHook(HOOK_NOTIFICATION_SINKS, {}, HOOK_TIMEOUT_MS, true);
  } catch (error) {
    return {sinks: [], warnings: [...warnings, `unable to load notification sinks: ${(error as Error).message}`]};
  }
  for (const {plugin, error} of outcome.failures) {
    if (!incompatible.has(plugin.name)) warnings.push(`unable to load notification sinks from plugin '${plugin.name}': ${error.message}; it sends nothing`);
  }
  const sinks = new Map<string, AvailableSink>();
  for (const {plugin, result} of outcome.successes) {
    if (incompatible.has(plugin.name) || result === undefined || result === null) continue;
    for (const registration of Array.isArray(result) ? result : [result]) {
      if (!isSinkFactory(registration)) {
        warnings.push(`unable to load a notification sink from plugin '${plugin.name}': its '${HOOK_NOTIFICATION_SINKS}' hook returned something that is not a notification sink`);
        continue;
      }
      const earlier = sinks.get(registration.id);
      if (earlier) {
        warnings.push(`both '${earlier.plugin}' and '${plugin.name}' provide the notification sink '${registration.id}'; using the one from '${earlier.plugin}'`);
        continue;
      }
      sinks.set(registration.id, {factory: registration, plugin: plugin.name});
    }
  }
  return {sinks: [...sinks.values()].sort((a, b) => a.factory.id.localeCompare(b.factory.id)), warnings};
}
