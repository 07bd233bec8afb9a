import type {ProgressEvents} from '../../core/events/index.js';
import {LineStageLog} from './line-stage-log.js';
import type {StageTitle, StageView} from './stage-view.js';

export type DisplayMode = 'interactive' | 'lines' | 'none';

/** listr2 on a terminal, timestamped lines under cron or CI, nothing under --json. */
export function chooseDisplayMode(json: boolean, stream: NodeJS.WriteStream = process.stdout): DisplayMode {
  if (json) return 'none';
  return stream.isTTY && process.env.CI !== 'true' && process.env.TERM !== 'dumb' ? 'interactive' : 'lines';
}

/** Shows the progress of `work` as it happens, in the chosen mode. */
export async function withStageDisplay<T>(
  mode: DisplayMode,
  events: ProgressEvents,
  operation: string,
  stages: readonly StageTitle[],
  work: () => Promise<T>,
  progressIntervalMs: number,
): Promise<T> {
  // listr2 is loaded only for a terminal: cron and --json runs start that much sooner.
  const view: StageView | undefined =
    mode === 'interactive'
      ? new (await import('./listr-stage-view.js')).ListrStageView(events, stages)
      : mode === 'lines'
        ? new LineStageLog(events, operation, process.stderr, progressIntervalMs)
        : undefined;
  view?.start();
  try {
    return await work();
  } finally {
    await view?.stop();
  }
}
