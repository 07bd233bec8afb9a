import {Listr, ListrTaskState, type ListrTaskWrapper} from 'listr2';

import type {ProgressEvents, StageEvent, StageName} from '../../core/events/index.js';
import {formatBytes, formatRate} from '../../core/units/index.js';
import {isTerminal, type StageTitle, type StageView} from './stage-view.js';

const REFRESH_MS = 200;

interface Pending {
  resolve(): void;
  reject(error: Error): void;
  startedAt: number;
  lastShown: number;
  settled: boolean;
  /** The core said this stage started: if nothing ends it, it was stopped, not "not reached". */
  begun: boolean;
}

/** One listr2 task per stage, all concurrent (they are stages of one stream), fed by core events. */
export class ListrStageView implements StageView {
  readonly #events: ProgressEvents;
  readonly #stages: readonly StageTitle[];
  readonly #pending = new Map<StageName, Pending>();
  readonly #tasks = new Map<StageName, ListrTaskWrapper<unknown, any, any>>();
  readonly #early = new Map<StageName, StageEvent>();
  #run: Promise<unknown> | undefined;
  readonly #listener = (event: StageEvent): void => this.#onEvent(event);

  constructor(events: ProgressEvents, stages: readonly StageTitle[]) {
    this.#events = events;
    this.#stages = stages;
  }

  start(): void {
    const list = new Listr(
      this.#stages.map(({stage, title}) => ({
        title,
        task: (_context: unknown, task: ListrTaskWrapper<unknown, any, any>) =>
          new Promise<void>((resolve, reject) => {
            this.#pending.set(stage, {resolve, reject, startedAt: Date.now(), lastShown: 0, settled: false, begun: false});
            this.#tasks.set(stage, task);
            // listr2 runs concurrent tasks at once; a stage the core has not started yet shows as waiting, not spinning.
            task.task.state$ = ListrTaskState.WAITING;
            const early = this.#early.get(stage);
            if (early) this.#onEvent(early);
          }),
      })),
      {concurrent: true, exitOnError: false, registerSignalListeners: false, rendererOptions: {collapseErrors: false, showErrorMessage: false}},
    );
    this.#events.on('stage', this.#listener);
    this.#run = list.run().catch(() => {});
  }

  #onEvent(event: StageEvent): void {
    const pending = this.#pending.get(event.stage);
    const task = this.#tasks.get(event.stage);
    if (!pending || !task) {
      if (isTerminal(event) || !this.#early.has(event.stage)) this.#early.set(event.stage, event);
      return;
    }
    if (pending.settled) return;
    const title = this.#stages.find((stage) => stage.stage === event.stage)!.title;
    if (!isTerminal(event) || event.status === 'finished') this.#markRunning(task);
    const bytes = event.bytes === undefined ? '' : `${formatBytes(event.bytes)}  ${formatRate(event.bytes, Date.now() - pending.startedAt)}`;
    switch (event.status) {
      case 'started': {
        pending.startedAt = Date.now();
        pending.begun = true;
        break;
      }
      case 'progress': {
        if (Date.now() - pending.lastShown < REFRESH_MS) return;
        pending.lastShown = Date.now();
        task.output = [bytes, event.detail].filter(Boolean).join('  ');
        break;
      }
      case 'finished': {
        pending.settled = true;
        task.title = `${title}${bytes ? `: ${bytes}` : ''}${event.detail ? ` (${event.detail})` : ''}`;
        pending.resolve();
        break;
      }
      case 'skipped': {
        pending.settled = true;
        task.skip(`${title}: ${event.detail ?? 'skipped'}`);
        pending.resolve();
        break;
      }
      case 'failed': {
        pending.settled = true;
        pending.reject(new Error(`${title} failed`));
        break;
      }
    }
  }

  /** listr2 completes only a task it considers started. */
  #markRunning(task: ListrTaskWrapper<unknown, any, any>): void {
    if (task.task.state === ListrTaskState.WAITING) task.task.state$ = ListrTaskState.STARTED;
  }

  async stop(): Promise<void> {
    // Let listr2 reach every task before settling the ones no event ended (the work failed before them).
    for (let wait = 0; this.#pending.size < this.#stages.length && wait < 50; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
    for (const [stage, pending] of this.#pending) {
      if (!pending.settled) this.#onEvent({stage, status: 'skipped', detail: pending.begun ? 'stopped' : 'not reached', at: new Date()});
    }
    await this.#run;
    this.#events.off('stage', this.#listener);
  }
}
