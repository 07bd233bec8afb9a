import {Flags} from '@oclif/core';
import {hostname} from 'node:os';

import {SynapseCommand} from '../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../cli/environment-help.js';
import {formatCheckReport, type PluginComponent} from '../cli/format/index.js';
import {discoverEncryptionProviders, discoverStorageBackends, pluginDirectoryVerdict} from '../cli/plugin-host/index.js';
import {configurationEnvironment, openStorage} from '../cli/runtime.js';
import type {StorageBackend} from '../contracts/storage.js';
import type {Settings} from '../core/config/index.js';
import {SynapseError} from '../core/errors/index.js';
import {Notifier, buildEvent, type DeliveryReport} from '../core/notify/index.js';
import {checkDatabase, checkKey, checkSinks, checkStorageWritable, type CheckResult} from '../core/services/index.js';

interface CheckOutput {
  readonly components: PluginComponent[];
  readonly checks: CheckResult[];
}

export default class Check extends SynapseCommand<CheckOutput> {
  static override summary = 'List what is installed and check the configuration end to end.';
  static override description = withEnvironmentHelp(
    'Lists every storage backend, cipher and notification sink available and the plugin each comes from, then checks the active configuration: settings valid, database reachable and pg_dump able to read it, psql present, storage reachable and writable, key usable (it must authenticate the newest backup), each active notification sink configured. With --notify-test, sends a test.ping event through every active sink and reports each delivery. Exits 9 when a check failed; warnings alone exit 0. Takes no lock and changes nothing but a probe object it deletes at once.',
    COMMAND_ENVIRONMENT.check,
  );

  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --notify-test --json'];

  static override flags = {
    'notify-test': Flags.boolean({summary: 'Send a test.ping event through every active notification sink.', default: false}),
  };

  async run(): Promise<CheckOutput> {
    const {flags} = await this.parse(Check);
    const components: PluginComponent[] = [];
    const checks: CheckResult[] = [];

    const pluginDirectory = pluginDirectoryVerdict();
    checks.push(
      pluginDirectory.refusal
        ? {check: 'plugin directory', status: 'failed', detail: pluginDirectory.refusal, suggestion: `Fix the owner and modes of '${pluginDirectory.dataDir}' and every directory above it, then run check again.`}
        : {check: 'plugin directory', status: 'ok', detail: `'${pluginDirectory.dataDir}' and the plugins in it can be written by root or this user only`},
    );
    // Discovery problems are findings here, not reasons to stop looking.
    try {
      for (const [scheme, {registration, plugin}] of await discoverStorageBackends(this.config)) components.push({kind: 'storage', name: scheme, description: registration.description, plugin});
      for (const [id, {registration, plugin}] of await discoverEncryptionProviders(this.config)) components.push({kind: 'cipher', name: id, description: registration.description, plugin});
    } catch (error) {
      checks.push({check: 'plugins', status: 'failed', detail: (error as Error).message, suggestion: (error as SynapseError).suggestion});
    }
    const env = configurationEnvironment();
    const sinks = await this.availableSinks();
    for (const {factory, plugin} of sinks.sinks) {
      const active = Boolean(env[factory.activatedBy]?.trim());
      components.push({kind: 'sink', name: factory.id, description: `${factory.description} ${active ? `Active (${factory.activatedBy} is set).` : `Inactive (set ${factory.activatedBy}).`}`, plugin});
    }
    checks.push(...sinks.warnings.map((warning): CheckResult => ({check: 'plugins', status: 'failed', detail: warning})));

    let settings: Settings;
    try {
      settings = this.loadSettings(['new-backups', 'retention']);
      checks.push({check: 'configuration', status: 'ok', detail: `database '${settings.database.database}', storage ${settings.storage.scheme} ${settings.storage.location}`});
    } catch (error) {
      checks.push({check: 'configuration', status: 'failed', detail: (error as Error).message, suggestion: (error as SynapseError).suggestion});
      settings = this.loadSettings([]);
    }

    checks.push(...(await checkDatabase(settings)));
    let storage: StorageBackend | undefined;
    try {
      storage = await openStorage(this.config, settings, 'read-write', {signal: this.signal, onWarning: (message) => this.warnUser(message)});
      checks.push(await checkStorageWritable(storage));
    } catch (error) {
      const missing = (error as Error).message.endsWith('it does not exist');
      checks.push({check: 'storage', status: missing ? 'warning' : 'failed', detail: (error as Error).message, suggestion: (error as SynapseError).suggestion});
    }
    checks.push(await checkKey(settings, storage));

    // Configured here rather than through this.notifier(), which would also report its problems as warnings: here they are findings.
    const notifier = await Notifier.configure(sinks.sinks, env);
    let reports: DeliveryReport[] | undefined;
    let probes: Map<string, string | undefined> | undefined;
    try {
      probes = await notifier.probe();
      if (flags['notify-test']) {
        reports = await notifier.deliver(buildEvent('test.ping', {operation: 'check', database: settings.database.database}, {host: hostname(), toolVersion: this.config.version}));
      }
    } finally {
      await notifier.close();
    }
    checks.push(...checkSinks(notifier, reports, probes));

    this.print(formatCheckReport(components, checks));
    const failed = checks.filter((check) => check.status === 'failed');
    if (failed.length > 0) {
      throw new SynapseError('E_CHECK_FAILED', {
        message: `${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${failed.map((check) => check.check).join(', ')}`,
        details: {components, checks},
      });
    }
    return {components, checks};
  }
}
