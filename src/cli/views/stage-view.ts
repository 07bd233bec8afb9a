import type {StageEvent, StageName} from '../../core/events/index.js';

/** What a view of a running operation is given and must do; the views and the display that picks one share it. */
export interface StageTitle {
  readonly stage: StageName;
  readonly title: string;
}

export interface StageView {
  start(): void;
  /** Called once the work is over: settles stages that never reported an end. */
  stop(): Promise<void>;
}

export function isTerminal(event: StageEvent): boolean {
  return event.status === 'finished' || event.status === 'failed' || event.status === 'skipped';
}
