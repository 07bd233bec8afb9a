import {SynapseError} from '../errors/index.js';

/** What NOTIFY_<SINK>_EVENTS holds when unset: every failure and every alert, not successes. */
export const DEFAULT_EVENT_PATTERNS: readonly string[] = ['*.failed', 'alert.*'];

const PATTERN = /^[a-z0-9_*-]+(\.[a-z0-9_*-]+)*$|^\*$/;

/** `backup.failed,restore.*` into its patterns; throws E_CONFIG naming the variable for a malformed one. */
export function parseEventPatterns(name: string, raw: string): string[] {
  const patterns = raw
    .split(',')
    .map((pattern) => pattern.trim().toLowerCase())
    .filter(Boolean);
  const bad = patterns.find((pattern) => !PATTERN.test(pattern));
  if (patterns.length === 0 || bad !== undefined) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to use ${name} '${raw}': ${bad === undefined ? 'it names no event' : `'${bad}' is not an event name or pattern`}`,
      suggestion: 'List event names or patterns separated by commas, with * as a wildcard: backup.failed,restore.*',
    });
  }
  return patterns;
}

/** Whether `event` is chosen by any of the patterns; `*` stands for any run of characters, dots included. */
export function matchesEvent(patterns: readonly string[], event: string): boolean {
  return patterns.some((pattern) => new RegExp(`^${pattern.split('*').map((part) => part.replaceAll('.', '\\.')).join('.*')}$`).test(event));
}
