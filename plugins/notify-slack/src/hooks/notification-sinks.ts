import type {NotificationSinkFactory} from 'synapse-backup/plugin-api';

import {slackSink} from '../slack-sink.js';

export default async function registerNotificationSinks(): Promise<NotificationSinkFactory[]> {
  return [slackSink];
}
