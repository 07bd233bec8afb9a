import {createHmac} from 'node:crypto';
import {parseHttpUrl, sendRequest} from '@synapse-backup/http-delivery';
import type {ConfiguredSink, DeliveryOptions, NotificationSinkFactory, SynapseEvent} from 'synapse-backup/plugin-api';

/** The headers a receiver checks: `sha256=` HMAC of the exact body bytes, as GitHub signs its webhooks. */
export const SIGNATURE_HEADER = 'x-synapse-signature';
export const TIMESTAMP_HEADER = 'x-synapse-timestamp';
export const EVENT_HEADER = 'x-synapse-event';
export const DELIVERY_HEADER = 'x-synapse-delivery';

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

class WebhookSink implements ConfiguredSink {
  readonly target: string;
  readonly #url: URL;
  readonly #secret: string | undefined;

  constructor(url: URL, secret: string | undefined) {
    this.#url = url;
    this.#secret = secret;
    this.target = url.origin;
  }

  async deliver(event: SynapseEvent, options: DeliveryOptions): Promise<void> {
    const body = JSON.stringify(event);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': `synapse-backup/${event.tool.version}`,
      [EVENT_HEADER]: event.event,
      [DELIVERY_HEADER]: event.id,
      [TIMESTAMP_HEADER]: String(Math.floor(Date.parse(event.time) / 1000)),
    };
    if (this.#secret) headers[SIGNATURE_HEADER] = signBody(this.#secret, body);
    await sendRequest(this.#url, {method: 'POST', headers, body}, options);
  }
}

export const webhookSink: NotificationSinkFactory = {
  id: 'webhook',
  description: 'A JSON POST of each event to an HTTP endpoint, signed with HMAC-SHA256 when a secret is set.',
  activatedBy: 'NOTIFY_WEBHOOK_URL',
  variables: [
    {name: 'NOTIFY_WEBHOOK_URL', description: 'Where to POST each event as JSON.', secret: true},
    {name: 'NOTIFY_WEBHOOK_SECRET', description: 'Signs each body: X-Synapse-Signature: sha256=<hex HMAC-SHA256 of the body>.', secret: true},
    {name: 'NOTIFY_WEBHOOK_EVENTS', description: 'Which events to send (default: every failure and alert).'},
  ],
  async create({env}) {
    const secret = env.NOTIFY_WEBHOOK_SECRET?.trim() || undefined;
    if (secret !== undefined && secret.length < 16) throw new Error('NOTIFY_WEBHOOK_SECRET is too short to be a secret (at least 16 characters)');
    return new WebhookSink(parseHttpUrl('NOTIFY_WEBHOOK_URL', env.NOTIFY_WEBHOOK_URL), secret);
  },
};
