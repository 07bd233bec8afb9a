import {SynapseError} from './synapse-error.js';

/**
 * The two ways a plugin fails a run, each worded once: nothing installed provides what the
 * configuration or a backup names, or the plugin that does threw.
 */
export function noPluginProvides(action: string, what: string, suggestion?: string): SynapseError {
  return new SynapseError('E_PLUGIN', {message: `unable to ${action}: no installed plugin provides ${what}`, ...(suggestion ? {suggestion} : {})});
}

export function pluginFailed(action: string, error: unknown, suggestion?: string): SynapseError {
  return new SynapseError('E_PLUGIN', {message: `unable to ${action}: ${error instanceof Error ? error.message : String(error)}`, cause: error, ...(suggestion ? {suggestion} : {})});
}
