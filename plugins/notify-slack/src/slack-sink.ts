import {parseHttpUrl, sendRequest} from '@synapse-backup/http-delivery';
import type {ConfiguredSink, DeliveryOptions, NotificationSinkFactory, SynapseEvent} from 'synapse-backup/plugin-api';

import {slackMessage} from './slack-message.js';

class SlackSink implements ConfiguredSink {
  readonly target: string;
  readonly #url: URL;

  constructor(url: URL) {
    this.#url = url;
    // The path of an incoming-webhook URL is its credential.
    this.target = `Slack webhook at ${url.host}`;
  }

  async deliver(event: SynapseEvent, options: DeliveryOptions): Promise<void> {
    await sendRequest(this.#url, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(slackMessage(event))}, options);
  }
}

export const slackSink: NotificationSinkFactory = {
  id: 'slack',
  description: 'A readable message (status, database, backup, size, duration, error and fix) to a Slack incoming webhook.',
  activatedBy: 'NOTIFY_SLACK_WEBHOOK_URL',
  variables: [
    {name: 'NOTIFY_SLACK_WEBHOOK_URL', description: 'The incoming-webhook URL Slack gave you (a credential).', secret: true},
    {name: 'NOTIFY_SLACK_EVENTS', description: 'Which events to send (default: every failure and alert).'},
  ],
  async create({env}) {
    return new SlackSink(parseHttpUrl('NOTIFY_SLACK_WEBHOOK_URL', env.NOTIFY_SLACK_WEBHOOK_URL));
  },
};
