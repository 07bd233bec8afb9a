import {mkdtemp, readFile, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';

import {commandSink} from '../../../plugins/notify-command/src/command-sink.js';
import {heartbeatSink} from '../../../plugins/notify-heartbeat/src/heartbeat-sink.js';
import {slackSink} from '../../../plugins/notify-slack/src/slack-sink.js';
import {webhookSink} from '../../../plugins/notify-webhook/src/webhook-sink.js';
import {describeNotificationSinkContract} from '../../../src/testing/index.js';
import {startHttpReceiver, type HttpReceiver} from '../../helpers/receivers.js';

/** Our own sinks pass the suite we export for other teams' sinks, against real receivers. */
describe('first-party sinks against the exported contract suite', function () {
  let receiver: HttpReceiver;
  let directory: string;

  before(async function () {
    receiver = await startHttpReceiver();
    directory = await mkdtemp(path.join(tmpdir(), 'synapse-sink-contract-'));
  });

  after(async function () {
    await receiver.close();
    await rm(directory, {recursive: true, force: true});
  });

  const bodies = async () => receiver.requests.map((request) => request.body);

  describeNotificationSinkContract(webhookSink, {
    env: () => ({NOTIFY_WEBHOOK_URL: `${receiver.url}/hook/sEcReT-TOKEN`, NOTIFY_WEBHOOK_SECRET: 'sixteen-chars-secret'}),
    received: bodies,
    secrets: ['sEcReT-TOKEN', 'sixteen-chars-secret'],
  });
  describeNotificationSinkContract(slackSink, {env: () => ({NOTIFY_SLACK_WEBHOOK_URL: `${receiver.url}/services/T/B/SLACK-TOKEN`}), received: bodies, secrets: ['SLACK-TOKEN']});
  describeNotificationSinkContract(heartbeatSink, {env: () => ({NOTIFY_HEARTBEAT_URL: `${receiver.url}/ping/HB-UUID`}), received: bodies, secrets: ['HB-UUID']});
  describeNotificationSinkContract(commandSink, {
    env: () => ({NOTIFY_COMMAND: `cat >> '${path.join(directory, 'events')}'`}),
    received: async () => (await readFile(path.join(directory, 'events'), 'utf8').catch(() => '')).split('\n'),
  });
});
