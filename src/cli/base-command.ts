import {Command, Errors} from '@oclif/core';

import {DEFAULT_PROGRESS_INTERVAL_MS, type SettingGroup, type Settings} from '../core/config/index.js';
import {ProgressEvents} from '../core/events/index.js';
import {findRestoreLeftovers, type RestoreLeftovers} from '../core/services/index.js';
import {SynapseError, isSynapseError} from '../core/errors/index.js';
import {startBufferCollector} from './buffer-collector.js';
import {loadSettings} from './runtime.js';
import {formatErrorText, formatRestoreLeftovers} from './format/index.js';
import {chooseDisplayMode, withStageDisplay, type DisplayMode, type StageTitle} from './views/index.js';

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

  protected readonly warnings: string[] = [];
  protected readonly events = new ProgressEvents();
  protected readonly abortController = new AbortController();
  #interrupts = 0;
  #progressIntervalMs = DEFAULT_PROGRESS_INTERVAL_MS;
  #stopBufferCollector: (() => void) | undefined;

  readonly #onSignal = (signal: NodeJS.Signals): void => {
    this.#interrupts++;
    if (this.#interrupts > 1) {
      process.stderr.write(`\nReceived ${signal} again: exiting without cleaning up.\n`);
      process.exit(130);
    }
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
    return settings;
  }

  /**
   * What earlier restores left on the database server, shown after the command's own output. Best
   * effort: `list` and `cleanup` must work with the server down, as in the emergency that calls
   * for a restore; null (and a warning) when the server could not be asked.
   */
  protected async showRestoreLeftovers(settings: Settings, options: {reclaim: boolean; separate?: boolean}): Promise<RestoreLeftovers | null> {
    let leftovers: RestoreLeftovers | null = null;
    try {
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

  override async catch(error: Error & {exitCode?: number}): Promise<never> {
    const failure = asSynapseError(error);
    process.exitCode = failure.exitCode;
    if (this.jsonEnabled()) {
      const envelope: ErrorEnvelope = {status: failure.exitCode, error: failure.toJSON(), warnings: this.warnings};
      this.logJson(envelope);
    } else {
      process.stderr.write(formatErrorText(failure));
      if (process.env.DEBUG && failure.cause) process.stderr.write(`Cause: ${String((failure.cause as Error).stack ?? failure.cause)}\n`);
    }
    throw Object.assign(new Error(failure.message), {skipOclifErrorHandling: true, oclif: {exit: failure.exitCode}});
  }

  override async finally(error: Error | undefined): Promise<void> {
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
    this.#stopBufferCollector?.();
    await super.finally(error);
  }

  abstract override run(): Promise<T>;
}
