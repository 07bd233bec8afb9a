import type {Hook} from '@oclif/core';

import {SynapseError} from '../../core/errors/index.js';
import {formatErrorText} from '../format/index.js';

/** Edit distance, for "did you mean": a mistyped command is one or two letters off. */
function distance(a: string, b: string): number {
  let previous = Array.from({length: b.length + 1}, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * An unknown command gets the same treatment as any failure: under --json the one envelope on
 * stdout, otherwise the error and a "Try this" line, with the nearest command, and exit 2.
 */
const hook: Hook<'command_not_found'> = async function (options) {
  const typed = options.id.replaceAll(':', ' ');
  const known = options.config.commandIDs.map((id) => id.replaceAll(':', ' '));
  const nearest = known.map((id) => ({id, cost: distance(typed, id)})).sort((a, b) => a.cost - b.cost)[0];
  const guess = nearest && nearest.cost <= Math.max(2, Math.floor(typed.length / 3)) ? nearest.id : undefined;
  const error = new SynapseError('E_USAGE', {
    message: `unable to run '${typed}': no such command`,
    suggestion: `${guess ? `Did you mean \`${options.config.bin} ${guess}\`? ` : ''}Run \`${options.config.bin} --help\` to see every command.`,
    details: guess ? {didYouMean: guess} : {},
  });
  if ((options.argv ?? []).includes('--json')) {
    process.stdout.write(`${JSON.stringify({status: error.exitCode, error: error.toJSON(), warnings: []}, null, 2)}\n`);
  } else {
    process.stderr.write(formatErrorText(error));
  }
  this.exit(error.exitCode);
};

export default hook;
