import type {NotificationSinkFactory} from 'synapse-backup/plugin-api';

import {heartbeatSink} from '../heartbeat-sink.js';

export default async function registerNotificationSinks(): Promise<NotificationSinkFactory[]> {
  return [heartbeatSink];
}
