import type {SynapseError} from '../../core/errors/index.js';

/** What a person reads on stderr when a command fails. */
export function formatErrorText(error: SynapseError): string {
  return `Error (${error.code}): ${error.message}\nTry this: ${error.suggestion}\n`;
}
