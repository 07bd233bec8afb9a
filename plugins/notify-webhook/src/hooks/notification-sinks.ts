import type {NotificationSinkFactory} from 'synapse-backup/plugin-api';

import {webhookSink} from '../webhook-sink.js';

export default async function registerNotificationSinks(): Promise<NotificationSinkFactory[]> {
  return [webhookSink];
}
