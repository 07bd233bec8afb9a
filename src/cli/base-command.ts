import {Command, Errors} from '@oclif/core';
import {hostname} from 'node:os';

import {DEFAULT_PROGRESS_INTERVAL_MS, type SettingGroup, type Settings} from '../core/config/index.js';
import {ProgressEvents} from '../core/events/index.js';
// Every command, `wal push` each time the archiver runs it, starts here: what only some runs need
// (notifications, the run journal, stored backups) is imported where it is used, not here. Loading
// it up front cost every archiver call 35 modules, about 10 ms.
import type {StoredBackupContext} from '../core/services/stored-backup.js';
import type {RestoreLeftovers} from '../core/services/restore-leftovers.js';
import type {EventName} from '../contracts/notification.js';
import {SynapseError, isSynapseError} from '../core/errors/index.js';
import type {DeliveryReport, EventFacts, Notifier} from '../core/notify/index.js';
import type {JournalOperation} from '../core/journal/index.js';
import type {StorageBackend} from '../contracts/storage.js';
import type {Location} from '../core/replication/index.js';
import {startBufferCollector} from './buffer-collector.js';
import {discoverNotificationSinks, pluginDirectoryVerdict} from './plugin-host/index.js';
import {configurationEnvironment, guessOperationFacts, loadEncryptionProviders, loadSettings, openEveryLocation} from './runtime.js';
import {formatErrorText} from './format/error-text.js';
import {formatRestoreLeftovers} from './format/restore-leftovers.js';
import {chooseDisplayMode, withStageDisplay, type DisplayMode} from './views/stage-display.js';
import type {StageTitle} from './views/stage-view.js';

export interface SuccessEnvelope<T> {
  readonly status: 0;
  readonly result: T;
  readonly warnings: readonly string[];
}

export interface ErrorEnvelope {
  readonly status: number;
  readonly error: Record<string, unknown>;
  readonly warnings: readonly string[];
}

/** How long after the first Ctrl-C or SIGTERM a command may take to stop, clean-up included. */
const STOP_DEADLINE_MS = 4000;

function asSynapseError(error: unknown): SynapseError {
  if (isSynapseError(error)) return error;
  if (error instanceof Errors.CLIError) {
    return new SynapseError('E_USAGE', {message: error.message.replace(/^Error: /, ''), cause: error});
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SynapseError('E_INTERNAL', {message: `unexpected failure: ${message}`, cause: error});
}

/**
 * What every synapse-backup command shares: `--json` with one envelope, one error path that maps
 * any failure to the catalogue (code, exit status, suggestion), warnings, the stage display and
 * Ctrl-C handling that lets the core clean up before the process exits with 130.
 */
export abstract class SynapseCommand<T> extends Command {
  static override enableJsonFlag = true;
  /** The subject of this command's events: 'backup' sends backup.failed when it fails. */
  static notifies: 'backup' | 'restore' | 'cleanup' | 'verify' | 'restore-test' | 'sync' | undefined;
  /** Which operation this command records in the storage's run journal, once it has opened the storage. */
  static journals: JournalOperation | undefined;

  protected readonly warnings: string[] = [];
  protected readonly events = new ProgressEvents();
  protected readonly abortController = new AbortController();
  #interrupts = 0;
  #progressIntervalMs = DEFAULT_PROGRESS_INTERVAL_MS;
  #stopBufferCollector: (() => void) | undefined;
  #startedAt = Date.now();
  #notifier: Promise<Notifier | undefined> | undefined;
  #sinks: ReturnType<typeof discoverNotificationSinks> | undefined;
  #settingsLoaded = false;
  #journal: {storage: StorageBackend; settings: Settings} | undefined;
  /** What the events of this run say about it; commands add to it as they learn (type, backup name). */
  protected eventFacts: EventFacts = {operation: ''};

  readonly #onSignal = (signal: NodeJS.Signals): void => {
    this.#interrupts++;
    if (this.#interrupts > 1) {
      process.stderr.write(`\nReceived ${signal} again: exiting without cleaning up.\n`);
      process.exit(130);
    }
    // Clean-up gets its time, but not forever: a clean-up call on a storage that stopped answering
    // would otherwise add its own grace to the first one. What is left is the next run's to repair.
    setTimeout(() => {
      process.stderr.write(`\nStill cleaning up ${STOP_DEADLINE_MS / 1000} s after ${signal}: exiting now; the next run removes what is left.\n`);
      process.exit(130);
    }, STOP_DEADLINE_MS).unref();
    const again = signal === 'SIGINT' ? 'press Ctrl-C again' : `send ${signal} again`;
    if (!this.jsonEnabled()) process.stderr.write(`\nReceived ${signal}: stopping and cleaning up (${again} to exit at once)...\n`);
    this.abortController.abort();
  };

  override async init(): Promise<void> {
    await super.init();
    process.on('SIGINT', this.#onSignal);
    process.on('SIGTERM', this.#onSignal);
    this.events.on('warning', (message) => this.warnUser(message));
    this.#stopBufferCollector = startBufferCollector();
    this.#startedAt = Date.now();
    this.eventFacts = {operation: (this.id ?? '').replaceAll(':', ' ')};
    const {refusal} = pluginDirectoryVerdict();
    if (refusal) this.warnUser(refusal);
  }

  protected warnUser(message: string): void {
    this.warnings.push(message);
    if (!this.jsonEnabled()) process.stderr.write(`Warning: ${message}\n`);
  }

  protected warnAll(messages: readonly string[]): void {
    for (const message of messages) this.warnUser(message);
  }

  protected get signal(): AbortSignal {
    return this.abortController.signal;
  }

  protected get displayMode(): DisplayMode {
    return chooseDisplayMode(this.jsonEnabled());
  }

  /**
   * The configuration, validated for the setting groups this command uses (the others only warn),
   * with its warnings shown: the key warnings reach every command that reads the key.
   */
  protected loadSettings(uses: readonly SettingGroup[]): Settings {
    const settings = loadSettings(uses);
    this.warnAll(settings.warnings);
    this.#progressIntervalMs = settings.progressIntervalMs;
    this.#settingsLoaded = true;
    this.eventFacts.database = settings.database.database;
    this.eventFacts.storage = {scheme: settings.storage.scheme, location: settings.storage.location};
    return settings;
  }

  /**
   * The configured notification sinks, found and configured once per run. Never fails: a sink that
   * cannot load or be configured is a warning.
   */
  /** The notification sinks the installed plugins provide, found once per run; problems come back as warnings. */
  protected availableSinks(): ReturnType<typeof discoverNotificationSinks> {
    this.#sinks ??= discoverNotificationSinks(this.config);
    return this.#sinks;
  }

  protected notifier(): Promise<Notifier | undefined> {
    this.#notifier ??= (async () => {
      try {
        const [{sinks, warnings}, {Notifier}] = await Promise.all([this.availableSinks(), import('../core/notify/index.js')]);
        const notifier = await Notifier.configure(sinks, configurationEnvironment());
        this.warnAll([...warnings, ...notifier.warnings]);
        return notifier;
      } catch (error) {
        this.warnUser(`unable to set up notifications: ${(error as Error).message}`);
        return undefined;
      }
    })();
    return this.#notifier;
  }

  /**
   * Sends an event through every sink that wants it and waits for the deliveries, each bounded by
   * NOTIFY_TIMEOUT. A delivery that fails is a warning; the command's outcome never changes.
   */
  protected async notify(name: EventName, facts: Partial<EventFacts> = {}): Promise<DeliveryReport[]> {
    const notifier = await this.notifier();
    if (!notifier || notifier.recipientsOf(name).length === 0) return [];
    // A run that failed before its settings were valid still says, from the raw configuration, which database it was for.
    const known = this.#settingsLoaded ? this.eventFacts : {...guessOperationFacts(), ...this.eventFacts};
    const {buildEvent} = await import('../core/notify/index.js');
    const event = buildEvent(name, {...known, ...facts}, {host: hostname(), toolVersion: this.config.version});
    const reports = await notifier.deliver(event);
    for (const report of reports) {
      if (!report.delivered) this.warnUser(`unable to notify the ${report.sink} sink (${report.target}) of ${report.event}: ${report.error}`);
    }
    return reports;
  }

  /**
   * What a command that reads stored backups (verify, test-restore) starts with: the name checked,
   * the settings, the storage (opened for reading: a read-only mount must serve them, as it serves
   * the disaster-recovery step `backup verify --latest`; what they record is a warning when it
   * cannot be written) and the ciphers; from here on the run is journaled.
   */
  protected async openStoredBackups(name: string | undefined, action: string): Promise<StoredBackupContext & {readonly locations: readonly Location[]}> {
    if (name) {
      // Not the services' index: it loads every service (pg, execa and all).
      const {assertBackupName} = await import('../core/services/stored-backup.js');
      assertBackupName(name, action);
      this.eventFacts.backup = {name};
    }
    const settings = this.loadSettings([]);
    // Every location where several are configured: a copy that does not serve is passed over for the next.
    const {opened} = await openEveryLocation(this.config, settings, 'read', {signal: this.signal, onWarning: (message) => this.warnUser(message)});
    this.journalIn(opened[0]!.storage, settings);
    return {settings, storage: opened[0]!.storage, locations: opened, encryptionProviders: await loadEncryptionProviders(this.config), events: this.events, signal: this.signal};
  }

  /** From now on, this run's outcome is recorded in the run journal of `storage` (see core/journal). */
  protected journalIn(storage: StorageBackend, settings: Settings): void {
    this.#journal = {storage, settings};
  }

  /** Appends this run to the journal; a failure to do so is a warning, never the run's outcome. */
  async #recordRun(failure: SynapseError | undefined): Promise<void> {
    const operation = (this.constructor as typeof SynapseCommand).journals;
    const journal = this.#journal;
    if (!operation || !journal) return;
    this.#journal = undefined;
    // A storage that just failed would only fail (or hang) again; a cancelled run must end now, not wait for the storage.
    if (failure?.code.startsWith('E_STORAGE') || this.signal.aborted) return;
    const finishedAt = new Date();
    try {
      const [{appendJournalEntry}, {documentAuthenticatorFor}] = await Promise.all([import('../core/journal/index.js'), import('../core/trust/index.js')]);
      await appendJournalEntry(
        journal.storage,
        {
          operation,
          outcome: failure ? 'failed' : 'succeeded',
          startedAt: new Date(this.#startedAt).toISOString(),
          finishedAt: finishedAt.toISOString(),
          durationMs: finishedAt.getTime() - this.#startedAt,
          host: hostname(),
          ...(this.eventFacts.database ? {database: this.eventFacts.database} : {}),
          ...(this.eventFacts.backup?.name ? {backupName: this.eventFacts.backup.name} : {}),
          ...(this.eventFacts.backup?.type ? {backupType: this.eventFacts.backup.type} : {}),
          ...(failure ? {error: {code: failure.code, message: failure.message}} : {}),
        },
        documentAuthenticatorFor(journal.settings.encryption),
        finishedAt,
      );
    } catch (error) {
      this.warnUser(`unable to record this run in the run journal of '${journal.storage.location}' (status reads it): ${(error as Error).message}`);
    }
  }

  /**
   * What earlier restores left on the database server, shown after the command's own output. Best
   * effort: `list` and `cleanup` must work with the server down, as in the emergency that calls
   * for a restore; null (and a warning) when the server could not be asked.
   */
  protected async showRestoreLeftovers(settings: Settings, options: {reclaim: boolean; separate?: boolean}): Promise<RestoreLeftovers | null> {
    let leftovers: RestoreLeftovers | null = null;
    try {
      const {findRestoreLeftovers} = await import('../core/services/restore-leftovers.js');
      leftovers = await findRestoreLeftovers(settings.database, {reclaim: options.reclaim});
    } catch (error) {
      this.warnUser(`unable to check the database server for databases left by earlier restores: ${(error as Error).message}`);
    }
    const lines = formatRestoreLeftovers(leftovers);
    if (lines.length > 0) this.print(`${options.separate ? '\n' : ''}${lines.join('\n')}`);
    return leftovers;
  }

  protected display<R>(operation: string, stages: readonly StageTitle[], work: () => Promise<R>): Promise<R> {
    return withStageDisplay(this.displayMode, this.events, operation, stages, work, this.#progressIntervalMs);
  }

  /** Human output on stdout; suppressed under --json, where only the envelope is printed. */
  protected print(text: string): void {
    if (!this.jsonEnabled()) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  protected override toSuccessJson(result: unknown): SuccessEnvelope<unknown> {
    return {status: 0, result, warnings: this.warnings};
  }

  /** The exit status a failure ends the process with; `status` maps every failure to Nagios' UNKNOWN. */
  protected exitStatusOf(failure: SynapseError): number {
    return failure.exitCode;
  }

  /** A failure the caller expects and asks about by its exit status alone (a WAL file PostgreSQL probes for): not printed. */
  protected isExpectedFailure(_failure: SynapseError): boolean {
    return false;
  }

  override async catch(error: Error & {exitCode?: number}): Promise<never> {
    const failure = asSynapseError(error);
    const exitStatus = this.exitStatusOf(failure);
    process.exitCode = exitStatus;
    const subject = (this.constructor as typeof SynapseCommand).notifies;
    const notifyFailure = async (): Promise<void> => {
      if (!subject || error instanceof Errors.ExitError) return;
      // A backup that reached its primary but not every other location: the backup did not fail, its replication did.
      await this.notify(failure.code === 'E_REPLICATION' ? 'replication.failed' : `${subject}.failed`, {
        ...(failure.code === 'E_REPLICATION' ? {details: failure.details} : {}),
        durationMs: Date.now() - this.#startedAt,
        error: {code: failure.code, exitStatus: failure.exitCode, message: failure.message, suggestion: failure.suggestion},
      });
    };
    if (!(error instanceof Errors.ExitError)) await this.#recordRun(failure);
    if (this.jsonEnabled()) {
      // The envelope carries the delivery warnings, so it waits for the deliveries.
      await notifyFailure();
      const envelope: ErrorEnvelope = {status: exitStatus, error: failure.toJSON(), warnings: this.warnings};
      this.logJson(envelope);
    } else {
      // People read the failure first; the notifications follow, each bounded by NOTIFY_TIMEOUT.
      if (!this.isExpectedFailure(failure) || process.env.DEBUG) process.stderr.write(formatErrorText(failure));
      if (process.env.DEBUG && failure.cause) process.stderr.write(`Cause: ${String((failure.cause as Error).stack ?? failure.cause)}\n`);
      await notifyFailure();
    }
    throw Object.assign(new Error(failure.message), {skipOclifErrorHandling: true, oclif: {exit: exitStatus}});
  }

  override async finally(error: Error | undefined): Promise<void> {
    // A failure was recorded by catch(); this is a success, recorded before its JSON envelope is printed.
    if (!error) await this.#recordRun(undefined);
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
    this.#stopBufferCollector?.();
    await (await this.#notifier)?.close();
    await super.finally(error);
  }

  abstract override run(): Promise<T>;
}
