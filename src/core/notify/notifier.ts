import {EVENT_NAMES, type ConfiguredSink, type NotificationSinkFactory, type SynapseEvent} from '../../contracts/notification.js';
import {parseDuration} from '../config/duration.js';
import {SECRET_VARIABLES, withoutSecrets} from '../postgres/database-target.js';
import {minimalChildEnvironment} from '../process/index.js';
import {DEFAULT_EVENT_PATTERNS, matchesEvent, parseEventPatterns} from './event-patterns.js';
import {redact, type Secret} from '../secrets/index.js';
import {shortSecretProblem, sinkSecrets} from './redact.js';

export const DEFAULT_NOTIFY_TIMEOUT_MS = 10_000;
/** Pause before the one retry a sink allows. */
const RETRY_PAUSE_MS = 500;

type Env = Readonly<Record<string, string | undefined>>;

export interface AvailableSink {
  readonly factory: NotificationSinkFactory;
  /** The plugin that provides it, for messages. */
  readonly plugin: string;
}

export interface ActiveSink {
  readonly id: string;
  readonly plugin: string;
  readonly sink: ConfiguredSink;
  readonly events: readonly string[];
}

export interface DeliveryReport {
  readonly sink: string;
  readonly target: string;
  readonly event: string;
  readonly delivered: boolean;
  readonly attempts: number;
  readonly durationMs: number;
  /** Why it was not delivered, secrets removed. */
  readonly error?: string;
}

/**
 * The active sinks, the events each one wants and the bounds of each delivery. Built from the
 * configuration environment alone, not from validated settings, so that a run that fails on its
 * configuration can still say so. A sink that cannot be configured is a warning, never a failure.
 */
export class Notifier {
  readonly sinks: readonly ActiveSink[];
  readonly timeoutMs: number;
  readonly warnings: readonly string[];
  readonly #secrets: readonly Secret[];

  private constructor(sinks: ActiveSink[], timeoutMs: number, warnings: string[], secrets: Secret[]) {
    this.sinks = sinks;
    this.timeoutMs = timeoutMs;
    this.warnings = warnings;
    this.#secrets = secrets;
  }

  static async configure(available: readonly AvailableSink[], env: Env, parentEnv: Env = process.env): Promise<Notifier> {
    const warnings: string[] = [];
    const secrets = sinkSecrets([
      ...available.flatMap(({factory}) => factory.variables.filter((variable) => variable.secret).map((variable) => env[variable.name])),
      ...SECRET_VARIABLES.map((name) => env[name]),
    ]);
    let timeoutMs = DEFAULT_NOTIFY_TIMEOUT_MS;
    if (env.NOTIFY_TIMEOUT?.trim()) {
      try {
        timeoutMs = parseDuration('NOTIFY_TIMEOUT', env.NOTIFY_TIMEOUT, 's');
      } catch (error) {
        warnings.push(`${(error as Error).message}; using ${DEFAULT_NOTIFY_TIMEOUT_MS / 1000} s`);
      }
    }
    const sinkEnv = withoutSecrets(env);
    const configured = await Promise.all(
      available
        .filter(({factory}) => env[factory.activatedBy]?.trim())
        .map(async ({factory, plugin}): Promise<ActiveSink | undefined> => {
          const variable = `NOTIFY_${factory.id.toUpperCase().replaceAll('-', '_')}_EVENTS`;
          let events = [...(factory.defaultEvents ?? DEFAULT_EVENT_PATTERNS)];
          if (env[variable]?.trim()) {
            try {
              events = parseEventPatterns(variable, env[variable]!);
              const unknown = events.filter((pattern) => !EVENT_NAMES.some((name) => matchesEvent([pattern], name)));
              if (unknown.length > 0) {
                warnings.push(
                  `${variable} names ${unknown.map((pattern) => `'${pattern}'`).join(', ')}, which matches no event of this version, so the ${factory.id} sink would never get it (mistyped? events are ${EVENT_NAMES.join(', ')})`,
                );
              }
            } catch (error) {
              warnings.push(`${(error as Error).message}; the ${factory.id} sink gets its default events (${events.join(',')})`);
            }
          }
          const short = factory.variables.flatMap((variable) => (variable.secret && env[variable.name]?.trim() ? [shortSecretProblem(variable.name, env[variable.name]!)] : [])).find(Boolean);
          if (short) {
            warnings.push(`unable to configure the ${factory.id} notification sink (plugin ${plugin}): ${short}; it sends nothing`);
            return undefined;
          }
          try {
            const sink = await factory.create({env: sinkEnv, childEnvironment: (extra = {}) => minimalChildEnvironment(parentEnv, extra)});
            return {id: factory.id, plugin, sink, events};
          } catch (error) {
            warnings.push(`unable to configure the ${factory.id} notification sink (plugin ${plugin}): ${redact((error as Error).message, secrets)}; it sends nothing`);
            return undefined;
          }
        }),
    );
    return new Notifier(
      configured.filter((sink): sink is ActiveSink => sink !== undefined),
      timeoutMs,
      warnings,
      secrets,
    );
  }

  /** The sinks that want this event. */
  recipientsOf(event: string): ActiveSink[] {
    return this.sinks.filter((sink) => event === 'test.ping' || matchesEvent(sink.events, event));
  }

  /** Delivers to every sink that wants it, in parallel; settles once each delivery has, within the timeout. */
  async deliver(event: SynapseEvent): Promise<DeliveryReport[]> {
    return Promise.all(this.recipientsOf(event.event).map((sink) => this.#deliverTo(sink, event)));
  }

  /**
   * Asks each sink that can to check, without sending anything, that a delivery could succeed,
   * bounded like a delivery; undefined for a sink that cannot tell, else the redacted reason or ''.
   */
  async probe(): Promise<Map<string, string | undefined>> {
    const results = await Promise.all(
      this.sinks.map(async ({id, sink}): Promise<[string, string | undefined]> => {
        if (!sink.probe) return [id, undefined];
        try {
          await this.#withinTimeout((signal) => sink.probe!({signal}));
          return [id, ''];
        } catch (error) {
          return [id, this.redact(error instanceof Error ? error.message : String(error))];
        }
      }),
    );
    return new Map(results);
  }

  /** Runs `work`, which must stop when its signal aborts, for NOTIFY_TIMEOUT at most: a sink never holds a run longer. */
  async #withinTimeout<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new Error(`no answer within ${formatSeconds(this.timeoutMs)} (NOTIFY_TIMEOUT)`));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([work(controller.signal), timedOut]);
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  }

  redact(text: string): string {
    return redact(text, this.#secrets);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.sinks.map(({sink}) => sink.close?.()));
  }

  async #deliverTo({id, sink}: ActiveSink, event: SynapseEvent): Promise<DeliveryReport> {
    const started = Date.now();
    let attempts = 0;
    const attempt = async (signal: AbortSignal): Promise<void> => {
      for (;;) {
        attempts++;
        try {
          await sink.deliver(event, {signal});
          return;
        } catch (error) {
          const retryable = (error as {retryable?: unknown}).retryable === true;
          if (!retryable || attempts > 1 || signal.aborted || Date.now() - started + RETRY_PAUSE_MS >= this.timeoutMs) throw error;
          await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
        }
      }
    };
    const report = (error?: unknown): DeliveryReport => ({
      sink: id,
      target: this.redact(sink.target),
      event: event.event,
      delivered: error === undefined,
      attempts,
      durationMs: Date.now() - started,
      ...(error === undefined ? {} : {error: this.redact(error instanceof Error ? error.message : String(error))}),
    });
    try {
      await this.#withinTimeout(attempt);
      return report();
    } catch (error) {
      return report(error);
    }
  }
}

function formatSeconds(milliseconds: number): string {
  return milliseconds % 1000 === 0 ? `${milliseconds / 1000} s` : `${milliseconds} ms`;
}
