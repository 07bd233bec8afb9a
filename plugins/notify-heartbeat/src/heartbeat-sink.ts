import {parseHttpUrl, sendRequest} from '@synapse-backup/http-delivery';
import type {ConfiguredSink, DeliveryOptions, NotificationSinkFactory, SynapseEvent} from 'synapse-backup/plugin-api';

/** Healthchecks.io's convention (Cronitor, Dead Man's Snitch and others accept it): `/start`, the URL itself, `/fail`. */
const SUFFIX: Partial<Record<SynapseEvent['outcome'], string>> = {started: '/start', success: '', failure: '/fail'};

/**
 * `check --notify-test` must not reset the dead man's switch: a success ping without a backup would
 * hide that backups stopped. Healthchecks' `/log` records the ping without changing the check's state.
 */
const TEST_SUFFIX = '/log';

export function pingUrl(base: URL, event: SynapseEvent): URL | undefined {
  const suffix = event.event === 'test.ping' ? TEST_SUFFIX : SUFFIX[event.outcome];
  if (suffix === undefined) return undefined;
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${suffix}`;
  return url;
}

class HeartbeatSink implements ConfiguredSink {
  readonly target: string;
  readonly #url: URL;

  constructor(url: URL) {
    this.#url = url;
    this.target = `heartbeat at ${url.host}`;
  }

  /** A POST whose body is the summary: Healthchecks shows it as the ping's log line. */
  async deliver(event: SynapseEvent, options: DeliveryOptions): Promise<void> {
    const url = pingUrl(this.#url, event);
    if (!url) return;
    await sendRequest(url, {method: 'POST', headers: {'content-type': 'text/plain; charset=utf-8'}, body: event.summary.slice(0, 10_000)}, options);
  }
}

export const heartbeatSink: NotificationSinkFactory = {
  id: 'heartbeat',
  description: "A dead man's switch: pings NOTIFY_HEARTBEAT_URL/start when a backup starts, the URL when it succeeds and /fail when it fails, so the monitoring service alerts when backups stop running at all.",
  activatedBy: 'NOTIFY_HEARTBEAT_URL',
  variables: [
    {name: 'NOTIFY_HEARTBEAT_URL', description: 'The check\'s ping URL (e.g. https://hc-ping.com/<uuid>).', secret: true},
    {name: 'NOTIFY_HEARTBEAT_EVENTS', description: 'Which events ping (default: backup.started, backup.succeeded, backup.failed).'},
  ],
  defaultEvents: ['backup.started', 'backup.succeeded', 'backup.failed'],
  async create({env}) {
    return new HeartbeatSink(parseHttpUrl('NOTIFY_HEARTBEAT_URL', env.NOTIFY_HEARTBEAT_URL));
  },
};
