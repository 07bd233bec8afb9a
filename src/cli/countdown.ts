import {cancelledError} from '../core/errors/index.js';

/**
 * Waits `seconds` so an accidental restore can be stopped with Ctrl-C. Not a prompt: under cron or
 * systemd it simply waits, then goes on. `onTick` receives the seconds left; without it the
 * countdown is written to stderr (a live display buffers stderr, so it passes onTick instead).
 */
export async function countdown(message: string, seconds: number, signal: AbortSignal, onTick?: (secondsLeft: number) => void): Promise<void> {
  const tick = onTick ?? ((left: number) => process.stderr.write(left === seconds ? `${message}\nStarting in ${seconds} seconds; press Ctrl-C to cancel.\n` : ''));
  for (let left = seconds; left > 0; left--) {
    tick(left);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        {once: true},
      );
    });
    if (signal.aborted) {
      throw cancelledError('restore', 'Nothing was changed: the countdown had not ended.');
    }
  }
}
