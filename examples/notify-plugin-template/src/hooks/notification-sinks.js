// @ts-check
// The hook synapse-backup calls to find this plugin's sinks (declared in package.json, oclif.hooks).
import {jsonlSink} from '../jsonl-sink.js';

/** @returns {Promise<import('synapse-backup/plugin-api').NotificationSinkFactory[]>} */
export default async function registerNotificationSinks() {
  return [jsonlSink];
}
