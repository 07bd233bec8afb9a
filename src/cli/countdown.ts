import {SynapseError} from '../core/errors/index.js';

/**
 * Waits `seconds`, telling the user on stderr, so an accidental restore can be stopped with Ctrl-C.
 * Not a prompt: under cron or systemd it simply waits, then goes on.
 */
export async function countdown(message: string, seconds: number, signal: AbortSignal): Promise<void> {
  const interactive = process.stderr.isTTY === true;
  process.stderr.write(`${message}\nStarting in ${seconds} seconds; press Ctrl-C to cancel.${interactive ? '' : '\n'}`);
  for (let left = seconds; left > 0; left--) {
    if (interactive) process.stderr.write(` ${left}`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, {once: true});
    });
    if (signal.aborted) {
      if (interactive) process.stderr.write('\n');
      throw new SynapseError('E_CANCELLED', {message: 'unable to restore: cancelled before anything was changed', suggestion: 'Nothing was changed. Run the command again to restore.'});
    }
  }
  if (interactive) process.stderr.write('\n');
}
