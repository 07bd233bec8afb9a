import {SynapseError} from './synapse-error.js';

/**
 * The one wording of a cancellation (Ctrl-C, SIGTERM, or an abort from the caller): what was
 * being done, and what state it left, which the operation knows best.
 */
export function cancelledError(operation: string, leftAs: string): SynapseError {
  return new SynapseError('E_CANCELLED', {message: `unable to ${operation}: cancelled`, suggestion: `${leftAs} Run the command again when you are ready.`});
}
