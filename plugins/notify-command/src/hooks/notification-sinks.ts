import type {NotificationSinkFactory} from 'synapse-backup/plugin-api';

import {commandSink} from '../command-sink.js';

export default async function registerNotificationSinks(): Promise<NotificationSinkFactory[]> {
  return [commandSink];
}
