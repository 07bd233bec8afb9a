// @ts-check
import {expect} from 'chai';
import {mkdtemp, readFile, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {describeNotificationSinkContract, sampleEvent, sinkCreateOptions} from 'synapse-backup/testing';

import {jsonlSink} from '../src/jsonl-sink.js';

describe('jsonl sink', function () {
  /** @type {string} */
  let directory;
  const file = () => path.join(directory, 'events.jsonl');
  const lines = async () => (await readFile(file(), 'utf8').catch(() => '')).split('\n').filter(Boolean);

  before(async function () {
    directory = await mkdtemp(path.join(tmpdir(), 'jsonl-sink-'));
  });

  after(async function () {
    await rm(directory, {recursive: true, force: true});
  });

  // What every sink must do, checked the way synapse-backup checks its own sinks.
  describeNotificationSinkContract(jsonlSink, {env: () => ({NOTIFY_JSONL_FILE: file()}), received: lines});

  it('writes each event as one line of JSON, the event exactly as given', async function () {
    const sink = await jsonlSink.create(sinkCreateOptions({NOTIFY_JSONL_FILE: file()}));
    const event = sampleEvent('restore.succeeded');
    await sink.deliver(event, {signal: new AbortController().signal});
    const last = (await lines()).at(-1);
    expect(JSON.parse(last ?? 'null')).to.deep.equal(event);
  });

  it('refuses a relative path', async function () {
    let message = '';
    await jsonlSink.create(sinkCreateOptions({NOTIFY_JSONL_FILE: 'events.jsonl'})).catch((error) => (message = error.message));
    expect(message).to.equal('NOTIFY_JSONL_FILE must be an absolute path');
  });
});
