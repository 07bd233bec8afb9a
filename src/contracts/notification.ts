/**
 * Notification sinks: where synapse-backup tells people (or machines) what happened. A sink is an
 * oclif plugin whose `synapse-backup:notification-sinks` hook returns one or more
 * NotificationSinkFactory; the core decides which events reach which sink, bounds each delivery
 * in time, retries where the sink says it is safe, and turns failures into warnings. A sink never
 * fails or delays the operation it reports on.
 */

/** Version of the event payload. Bumped only for changes that could break a consumer; fields are only ever added. */
export const EVENT_SCHEMA_VERSION = 1;

/**
 * The events of this version. Names are `<subject>.<outcome>`, and `alert.<problem>` for what
 * `status --notify` finds (`alert.resolved` when a problem clears, with `details.alert` naming it).
 * Later versions add names, so a sink must accept names it does not know.
 */
export const EVENT_NAMES = [
  'backup.started',
  'backup.succeeded',
  'backup.failed',
  'restore.succeeded',
  'restore.failed',
  'cleanup.completed',
  'cleanup.failed',
  'verify.succeeded',
  'verify.failed',
  'restore-test.succeeded',
  'restore-test.failed',
  'replication.failed',
  'sync.completed',
  'sync.failed',
  'alert.backup_overdue',
  'alert.disk_low',
  'alert.backup_size_drop',
  'alert.backup_failed',
  'alert.restore_test_failed',
  'alert.checksum_failed',
  'alert.storage_unreadable',
  'alert.replication_behind',
  'alert.archive_lag',
  'alert.resolved',
  'test.ping',
] as const;

export type KnownEventName = (typeof EVENT_NAMES)[number];
/** Any event name: the known ones, and those of later versions. */
export type EventName = KnownEventName | (string & {});

export type EventOutcome = 'started' | 'success' | 'failure' | 'info';

export interface EventBackup {
  readonly name?: string;
  readonly type?: string;
  /** Bytes as stored (compressed, encrypted). */
  readonly storedBytes?: number;
  /** Bytes of SQL that pg_dump wrote. */
  readonly plaintextBytes?: number;
  readonly sha256?: string;
  readonly compression?: string;
  readonly encrypted?: boolean;
}

export interface EventError {
  readonly code: string;
  readonly exitStatus: number;
  readonly message: string;
  readonly suggestion: string;
}

/**
 * What every event carries: enough for an on-call engineer to know from the event alone which host,
 * database and backup it is about, what happened and, for a failure, why and what to do. Never a
 * secret: no password, key, credential or signed URL.
 */
export interface SynapseEvent {
  readonly schemaVersion: typeof EVENT_SCHEMA_VERSION;
  /** Unique per event; a receiver can drop a retried delivery it has already seen. */
  readonly id: string;
  readonly event: EventName;
  readonly outcome: EventOutcome;
  /** ISO 8601, UTC. */
  readonly time: string;
  readonly host: string;
  /** The command that ran, e.g. 'backup run'. */
  readonly operation: string;
  readonly tool: {readonly name: 'synapse-backup'; readonly version: string};
  /** The database the operation was about, when known. */
  readonly database?: string;
  readonly backup?: EventBackup;
  /** Where the backups are, for people: a directory or a bucket URL, never with credentials. */
  readonly storage?: {readonly scheme: string; readonly location: string};
  readonly durationMs?: number;
  readonly error?: EventError;
  /** Facts particular to one event, e.g. what a cleanup removed. */
  readonly details?: Readonly<Record<string, unknown>>;
  /** One line that says it all, e.g. "backup of test on db1 (hourly) failed: E_DUMP_FAILED ...". */
  readonly summary: string;
}

export interface DeliveryOptions {
  /** Aborted when the delivery's time is up or the command is stopped: stop and clean up. */
  readonly signal: AbortSignal;
}

/**
 * A sink, configured and ready to deliver. `target` says where deliveries go without a secret in
 * it (a host, a redacted URL, the command's name): it appears in warnings and in `check`.
 */
export interface ConfiguredSink {
  readonly target: string;
  /**
   * Delivers one event. Rejects when it was not delivered. Set `retryable: true` on the error when
   * trying again cannot deliver it twice (nothing reached the receiver, or the receiver is
   * idempotent): the core then tries once more.
   */
  deliver(event: SynapseEvent, options: DeliveryOptions): Promise<void>;
  /**
   * Checks, without sending anything, that a delivery could succeed (connects, negotiates, logs
   * in), for `synapse-backup check`. Rejects with the reason. Optional (plugin API 1.2).
   */
  probe?(options: DeliveryOptions): Promise<void>;
  close?(): Promise<void>;
}

/** One variable a sink reads, for `check` and for redaction. */
export interface SinkVariable {
  readonly name: string;
  readonly description: string;
  /** Its value (and any URL credentials in it) is removed from every message the core prints. */
  readonly secret?: boolean;
}

export interface SinkCreateOptions {
  /** The configuration environment (process environment and .env), sink variables included. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * The environment a child process of the sink may get: only PATH, HOME, the locale and the like,
   * plus `extra`. Never the parent's secrets.
   */
  childEnvironment(extra?: Readonly<Record<string, string>>): Record<string, string>;
}

/** What a notification plugin's `synapse-backup:notification-sinks` hook returns. */
export interface NotificationSinkFactory {
  /** Short lowercase name: selects NOTIFY_<ID>_EVENTS, e.g. 'webhook'. */
  readonly id: string;
  readonly description: string;
  /** The variable whose presence makes the sink active, e.g. 'NOTIFY_WEBHOOK_URL'. */
  readonly activatedBy: string;
  readonly variables: readonly SinkVariable[];
  /** Events delivered when NOTIFY_<ID>_EVENTS is not set; patterns as in that variable. */
  readonly defaultEvents?: readonly string[];
  /** Checks the configuration and prepares delivery; throws with a clear message when it is wrong. */
  create(options: SinkCreateOptions): Promise<ConfiguredSink>;
}
