import type {ProgressEvents, StageEvent, StageName} from '../../core/events/index.js';
import {formatBytes, formatDuration, formatRate} from '../../core/units/index.js';
import {isTerminal, type StageView} from './stage-view.js';

/** One timestamped line per stage event for cron, systemd and CI logs, progress throttled. */
export class LineStageLog implements StageView {
  readonly #events: ProgressEvents;
  readonly #operation: string;
  readonly #out: NodeJS.WritableStream;
  readonly #startedAt = new Map<StageName, number>();
  readonly #lastProgress = new Map<StageName, number>();
  readonly #ended = new Set<StageName>();
  readonly #listener = (event: StageEvent): void => this.#onEvent(event);
  /** How often a stage's progress may be logged; cron mail and journald need no more. */
  readonly #progressIntervalMs: number;

  constructor(events: ProgressEvents, operation: string, out: NodeJS.WritableStream, progressIntervalMs: number) {
    this.#events = events;
    this.#operation = operation;
    this.#out = out;
    this.#progressIntervalMs = progressIntervalMs;
  }

  start(): void {
    this.#events.on('stage', this.#listener);
  }

  async stop(): Promise<void> {
    this.#events.off('stage', this.#listener);
  }

  #onEvent(event: StageEvent): void {
    if (this.#ended.has(event.stage)) return;
    const now = event.at.getTime();
    const since = now - (this.#startedAt.get(event.stage) ?? now);
    if (event.status === 'started') this.#startedAt.set(event.stage, now);
    if (event.status === 'progress') {
      if (now - (this.#lastProgress.get(event.stage) ?? this.#startedAt.get(event.stage) ?? 0) < this.#progressIntervalMs) return;
      this.#lastProgress.set(event.stage, now);
    }
    if (isTerminal(event)) this.#ended.add(event.stage);
    const facts = [
      event.bytes === undefined ? undefined : `${formatBytes(event.bytes)}${since > 0 ? ` at ${formatRate(event.bytes, since)}` : ''}`,
      event.status === 'finished' && since > 0 ? `in ${formatDuration(since)}` : undefined,
      event.detail,
    ].filter(Boolean);
    this.#out.write(`${event.at.toISOString()} ${this.#operation} ${event.stage}: ${event.status}${facts.length > 0 ? ` (${facts.join(', ')})` : ''}\n`);
  }
}
