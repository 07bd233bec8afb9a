import type {NotificationSinkFactory} from 'synapse-backup/plugin-api';

import {emailSink} from '../email-sink.js';

export default async function registerNotificationSinks(): Promise<NotificationSinkFactory[]> {
  return [emailSink];
}
