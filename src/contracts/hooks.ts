import type {EncryptionProvider} from './encryption.js';
import type {NotificationSinkFactory} from './notification.js';
import type {StorageBackendFactory} from './storage.js';

/**
 * The custom oclif hooks through which the core finds its plugins at run time. A plugin lists
 * a hook file under `oclif.hooks` in its package.json; the hook takes no options and returns
 * one registration or an array of them.
 */
export const HOOK_STORAGE_BACKENDS = 'synapse-backup:storage-backends';
export const HOOK_ENCRYPTION_PROVIDERS = 'synapse-backup:encryption-providers';
export const HOOK_NOTIFICATION_SINKS = 'synapse-backup:notification-sinks';

export interface SynapseHookRegistrations {
  [HOOK_STORAGE_BACKENDS]: StorageBackendFactory | StorageBackendFactory[];
  [HOOK_ENCRYPTION_PROVIDERS]: EncryptionProvider | EncryptionProvider[];
  [HOOK_NOTIFICATION_SINKS]: NotificationSinkFactory | NotificationSinkFactory[];
}
