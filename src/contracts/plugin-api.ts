/**
 * The version of the plugin API: the contracts in this folder (storage, encryption, notification
 * sinks, event payloads) and the hooks that register them. A plugin declares the range it was
 * written for in its package.json, and the core refuses one whose range does not include this:
 *
 *   "synapse-backup": {"pluginApi": "^1.0.0"}
 *
 * Semantic versioning: a minor version adds (a new optional member, a new event name), a major
 * version may break.
 */
export const PLUGIN_API_VERSION = '1.3.0';

/** The package.json field that holds a plugin's declaration. */
export const PLUGIN_MANIFEST_FIELD = 'synapse-backup';
