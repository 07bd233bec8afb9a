import {Flags} from '@oclif/core';
import path from 'node:path';

import {SynapseCommand, type SuccessEnvelope} from '../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../cli/environment-help.js';
import {formatPrometheus, formatStatusReport} from '../cli/format/index.js';
import {configurationEnvironment, openEveryLocation} from '../cli/runtime.js';
import {walCodecFor} from '../cli/wal/wal-context.js';
import {SynapseError} from '../core/errors/index.js';
import {writeFileAtomically} from '../core/files/index.js';
import {alertStateDirectories, deliverAlerts, readBackupStatus, readReplicatedStatus, type AlertDeliveryResult} from '../core/services/index.js';
import {exitStatusOf, repeatIntervalFrom, type StatusReport} from '../core/status/index.js';

interface StatusOutput extends StatusReport {
  readonly exitStatus: number;
  /** With --notify: the alerts sent this time, and the problems whose resolution was sent. */
  readonly alerts?: AlertDeliveryResult;
}

/** Nagios' UNKNOWN: what status ends with when it cannot tell. */
const UNKNOWN = 3;
const TEXTFILE_NAME = 'synapse_backup.prom';

export default class Status extends SynapseCommand<StatusOutput> {
  static override summary = 'Are the backups current? For people, Nagios/Icinga (exit status), Prometheus, and alerts.';
  static override description = withEnvironmentHelp(
    `Reads the backup storage (a monitoring host that can read the storage can run it; the database is asked only about WAL archiving, where the storage holds a WAL archive). For the configured database (or --all-databases), per backup type: the newest good backup, its age, size and duration, whether it is overdue (defaults: hourly 2h, daily 26h, monthly 32d), and the trend of sizes and durations, warning when the newest backup is under BACKUP_ALERT_MIN_SIZE_RATIO of the median of the previous ones; the free space of the backup location (warning under BACKUP_ALERT_MIN_FREE_PERCENT, default 20); and, from the run journal every command appends to, the recent failures and the last successful verify and restore test; with a WAL archive, the newest authentic archived segment, its age and what pg_stat_archiver says (critical when the archiver fails or writes elsewhere; the age, against BACKUP_ALERT_WAL_AGE_WARNING and _CRITICAL, only while WAL waits). The types checked are BACKUP_ALERT_TYPES, by default every type that has a backup. Exit status in the Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for any failure to read the storage). --notify sends each problem as an alert.* event through the notification sinks once, again after NOTIFY_REPEAT_INTERVAL (default 24h) while it stands, and alert.resolved when it clears; concurrent runs on one host never send twice.`,
    COMMAND_ENVIRONMENT.status,
  );

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --format prometheus',
    '<%= config.bin %> <%= command.id %> --textfile /var/lib/prometheus/node-exporter --notify',
    'BACKUP_ALERT_MAX_AGE_HOURLY=90m <%= config.bin %> <%= command.id %> --json',
  ];

  static override flags = {
    format: Flags.string({summary: 'Output format (--json wins over it).', options: ['table', 'prometheus'], default: 'table'}),
    textfile: Flags.string({summary: `Also write the Prometheus metrics to DIR/${TEXTFILE_NAME}, atomically, for node_exporter's textfile collector.`, helpValue: 'DIR'}),
    notify: Flags.boolean({summary: 'Send each problem as an alert through the notification sinks, de-duplicated (NOTIFY_REPEAT_INTERVAL).', default: false}),
    'all-databases': Flags.boolean({summary: 'Report on every database the storage holds backups of.', default: false}),
  };

  protected override exitStatusOf(): number {
    return UNKNOWN;
  }

  protected override toSuccessJson(result: StatusOutput): SuccessEnvelope<unknown> {
    // The envelope's status is the process's: scripts that read one need not read the other.
    return {...super.toSuccessJson(result), status: result.exitStatus as 0};
  }

  async run(): Promise<StatusOutput> {
    const {flags} = await this.parse(Status);
    const settings = this.loadSettings([]);
    // NOTIFY_* are the notifier's, kept out of the settings' environment (which plugins see).
    const repeatIntervalMs = repeatIntervalFrom(configurationEnvironment());
    const storageOptions = {signal: this.signal, onWarning: (message: string) => this.warnUser(message)};
    const {opened, failed} = await openEveryLocation(this.config, settings, 'read', storageOptions);
    const storage = opened[0]!.storage;
    const request = {allDatabases: flags['all-databases'], walCodec: await walCodecFor(this.config, settings)};
    const report: StatusReport =
      settings.locations.length > 1
        ? await readReplicatedStatus(settings, opened, failed, request, (message) => this.warnUser(message))
        : await readBackupStatus(settings, storage, request, (message) => this.warnUser(message));
    const exitStatus = exitStatusOf(report.level);
    if (flags.textfile) await this.writeTextfile(flags.textfile, formatPrometheus(report));
    if (flags.format === 'prometheus') {
      if (!this.jsonEnabled()) process.stdout.write(formatPrometheus(report));
    } else this.print(formatStatusReport(report, {sparklines: process.stdout.isTTY === true}));
    const alerts = flags.notify
      ? await deliverAlerts({
          report,
          storage: {scheme: settings.storage.scheme, location: storage.location},
          stateDirectories: alertStateDirectories(configurationEnvironment(), process.geteuid?.() ?? 0),
          repeatIntervalMs,
          now: new Date(),
          send: (name, facts) => this.notify(name, facts),
          onWarning: (message) => this.warnUser(message),
        })
      : undefined;
    process.exitCode = exitStatus;
    return {...report, exitStatus, ...(alerts ? {alerts} : {})};
  }

  /** Writes the metrics where node_exporter reads them, by rename, so that it never reads half a file. */
  async writeTextfile(directory: string, text: string): Promise<void> {
    const file = path.join(directory, TEXTFILE_NAME);
    try {
      await writeFileAtomically(file, text, {mode: 0o644});
    } catch (error) {
      throw new SynapseError('E_CONFIG', {
        message: `unable to write the Prometheus textfile '${file}': ${(error as Error).message}`,
        suggestion: "Point --textfile at a directory this user can write to (node_exporter's --collector.textfile.directory).",
        cause: error,
      });
    }
  }
}
