// @ts-check
import {appendFile} from 'node:fs/promises';
import path from 'node:path';

/**
 * A notification sink that appends every event it is given as one line of JSON to a file: a log
 * that jq, a log shipper or a test can read. It is the whole of a sink: a factory that reads its
 * configuration from `env` and returns an object with `target` and `deliver`.
 *
 * The types come from the plugin API; they are only checked, never imported at run time, so the
 * plugin needs nothing installed next to it.
 *
 * @type {import('synapse-backup/plugin-api').NotificationSinkFactory}
 */
export const jsonlSink = {
  // Selects NOTIFY_JSONL_EVENTS; shown by `synapse-backup check`.
  id: 'jsonl',
  description: 'Appends each event as one JSON line to the file NOTIFY_JSONL_FILE.',
  // The sink is active when this variable is set.
  activatedBy: 'NOTIFY_JSONL_FILE',
  variables: [
    {name: 'NOTIFY_JSONL_FILE', description: 'The file to append to (created with mode 0600).'},
    {name: 'NOTIFY_JSONL_EVENTS', description: 'Which events to append (default: every failure and alert).'},
  ],
  // Leave defaultEvents out to get the core's default, every failure and every alert.

  async create({env}) {
    const file = env.NOTIFY_JSONL_FILE?.trim() ?? '';
    // Throw a plain Error with a clear message: the core turns it into a warning naming the plugin.
    if (!path.isAbsolute(file)) throw new Error('NOTIFY_JSONL_FILE must be an absolute path');
    return {
      // Where deliveries go, for warnings and `check`. Never put a secret here.
      target: `file ${file}`,
      async deliver(event, {signal}) {
        // One write() with O_APPEND: lines from concurrent runs never interleave.
        // Reject (throw) when the event was not delivered; the core reports it and never fails the run.
        await appendFile(file, `${JSON.stringify(event)}\n`, {flag: 'a', mode: 0o600, signal});
      },
    };
  },
};
