import {expect} from 'chai';
import {randomUUID} from 'node:crypto';

import {EVENT_SCHEMA_VERSION, type EventName, type NotificationSinkFactory, type SinkCreateOptions, type SynapseEvent} from '../contracts/notification.js';

/**
 * A complete, valid event as the core sends it, for a sink's tests. `overrides` replaces fields;
 * the summary avoids characters that chat formats escape, so a receiver's text can be searched for it.
 */
export function sampleEvent(name: EventName = 'backup.failed', overrides: Partial<SynapseEvent> = {}): SynapseEvent {
  const failed = name.endsWith('.failed');
  const id = randomUUID();
  return {
    schemaVersion: EVENT_SCHEMA_VERSION,
    id,
    event: name,
    outcome: failed ? 'failure' : name.endsWith('.started') ? 'started' : 'success',
    time: new Date().toISOString(),
    host: 'db1.example.com',
    operation: 'backup run',
    tool: {name: 'synapse-backup', version: '0.0.0-test'},
    database: 'shop',
    backup: {name: 'backup_hourly_20260222_143000.sql.gz.enc', type: 'hourly', storedBytes: 2_450_000, plaintextBytes: 27_000_000, compression: 'gzip', encrypted: true},
    storage: {scheme: 'local', location: '/var/backups/pg'},
    durationMs: 3100,
    ...(failed ? {error: {code: 'E_DUMP_FAILED', exitStatus: 5, message: 'pg_dump exited with status 1', suggestion: "Read pg_dump's message above."}} : {}),
    summary: `${failed ? 'FAILED' : 'OK'}: backup run (hourly) of database shop on db1.example.com ${id.slice(0, 8)}`,
    ...overrides,
  };
}

/** The options a sink's create() gets from the core, for tests. */
export function sinkCreateOptions(env: Record<string, string | undefined>): SinkCreateOptions {
  return {
    env,
    childEnvironment: (extra = {}) => ({PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...extra}),
  };
}

export interface SinkContractOptions {
  /** The configuration that activates the sink against a receiver the test controls. */
  readonly env: () => Record<string, string | undefined> | Promise<Record<string, string | undefined>>;
  /** Everything the receiver got so far, as text (a request body, a mail, a line of a file). */
  readonly received: () => Promise<string[]>;
  /** Values that must never appear in the sink's `target` or in its error messages. */
  readonly secrets?: readonly string[];
}

/**
 * The behaviour every notification sink must show, as a mocha suite. A sink plugin's tests call it
 * with its factory and a real receiver (an HTTP server on loopback, a file, an SMTP server):
 *
 *   describeNotificationSinkContract(jsonlSink, {env: () => ({NOTIFY_JSONL_FILE: file}), received: readLines});
 */
export function describeNotificationSinkContract(factory: NotificationSinkFactory, options: SinkContractOptions): void {
  describe(`notification sink contract: ${factory.id}`, function () {
    this.timeout(30_000);

    it('declares a lowercase id, a description and the variable that activates it', function () {
      expect(factory.id).to.match(/^[a-z][a-z0-9-]*$/);
      expect(factory.description).to.be.a('string').that.is.not.empty;
      expect(factory.variables.map((variable) => variable.name)).to.include(factory.activatedBy);
      expect(factory.activatedBy).to.match(/^NOTIFY_[A-Z0-9_]+$/);
    });

    it('delivers an event so that the receiver can tell what happened', async function () {
      const sink = await factory.create(sinkCreateOptions(await options.env()));
      try {
        const event = sampleEvent('backup.failed');
        await sink.deliver(event, {signal: new AbortController().signal});
        const received = await options.received();
        expect(received.some((text) => text.includes(event.summary) || text.includes(event.id)), 'the receiver got the event').to.equal(true);
      } finally {
        await sink.close?.();
      }
    });

    it('accepts an event name it does not know (later versions add names)', async function () {
      const sink = await factory.create(sinkCreateOptions(await options.env()));
      try {
        await sink.deliver(sampleEvent('future-subject.failed'), {signal: new AbortController().signal});
      } finally {
        await sink.close?.();
      }
    });

    it('says where it delivers without a secret in it', async function () {
      const sink = await factory.create(sinkCreateOptions(await options.env()));
      expect(sink.target).to.be.a('string').that.is.not.empty;
      for (const secret of options.secrets ?? []) expect(sink.target).not.to.include(secret);
      await sink.close?.();
    });

    it('stops promptly when its delivery is aborted', async function () {
      const sink = await factory.create(sinkCreateOptions(await options.env()));
      const controller = new AbortController();
      controller.abort();
      const started = Date.now();
      await sink.deliver(sampleEvent('backup.failed'), {signal: controller.signal}).catch(() => {});
      expect(Date.now() - started).to.be.below(5000);
      await sink.close?.();
    });

    it('refuses to be created without its configuration, with a message that names no secret', async function () {
      const env = {...(await options.env())};
      for (const variable of factory.variables) env[variable.name] = variable.name === factory.activatedBy ? '::not valid::' : undefined;
      let failure: unknown;
      try {
        const sink = await factory.create(sinkCreateOptions(env));
        await sink.close?.();
      } catch (error) {
        failure = error;
      }
      if (failure === undefined) return; // Any value may be valid for some sinks (a command line).
      expect(failure).to.be.instanceOf(Error);
      for (const secret of options.secrets ?? []) expect((failure as Error).message).not.to.include(secret);
    });
  });
}
