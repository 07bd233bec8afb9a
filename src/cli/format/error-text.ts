import type {SynapseError} from '../../core/errors/index.js';

/** What a person reads on stderr when a command fails. */
export function formatErrorText(error: SynapseError): string {
  const stage = typeof error.details.stage === 'string' ? ` in stage '${error.details.stage}'` : '';
  return `Error (${error.code})${stage}: ${error.message}\nTry this: ${error.suggestion}\n`;
}
