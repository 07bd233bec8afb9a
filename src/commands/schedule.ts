import {Flags} from '@oclif/core';
import path from 'node:path';

import {SynapseCommand} from '../cli/base-command.js';
import {SynapseError} from '../core/errors/index.js';
import {writeFileAtomically} from '../core/files/index.js';
import {DEFAULT_SCHEDULE_OPTIONS, cronTable, systemdUnits, validateScheduleOptions, type UnitFile} from '../core/schedule/index.js';

interface ScheduleOutput {
  readonly format: 'cron' | 'systemd';
  readonly files: ReadonlyArray<UnitFile & {readonly path: string | null}>;
}

export default class Schedule extends SynapseCommand<ScheduleOutput> {
  static override summary = 'Print (or write) ready-to-use cron or systemd entries for backups, cleanup, status alerts and restore tests.';
  static override description = `Hourly, daily (with --verify) and monthly (with --verify) backups, cleanup every hour, \`status --notify\` every 5 minutes and a weekly \`backup test-restore --latest\`. --cron prints an /etc/cron.d file that loads the environment file; --systemd prints a service and a timer per job (Persistent=true, RandomizedDelaySec for the backups, configuration from EnvironmentFile=, the key through LoadCredential= so that it is in neither the unit nor its environment file, and ProtectSystem, PrivateTmp, NoNewPrivileges). With --output DIR the files are written there instead (for /etc/systemd/system, then \`systemctl daemon-reload\` and \`systemctl enable --now synapse-backup-hourly.timer ...\`).`;

  static override examples = [
    '<%= config.bin %> <%= command.id %> --cron > /etc/cron.d/synapse-backup',
    '<%= config.bin %> <%= command.id %> --systemd --output /etc/systemd/system',
    '<%= config.bin %> <%= command.id %> --systemd --install-dir /srv/synapse-backup --user backup --env-file /etc/synapse-backup/env',
  ];

  static override flags = {
    cron: Flags.boolean({summary: 'Entries for /etc/cron.d.', exactlyOne: ['cron', 'systemd']}),
    systemd: Flags.boolean({summary: 'systemd service and timer units.', exactlyOne: ['cron', 'systemd']}),
    output: Flags.string({summary: 'Write the files into DIR instead of printing them.', helpValue: 'DIR'}),
    'install-dir': Flags.string({summary: 'Where synapse-backup is installed (its bin/synapse-backup runs).', default: DEFAULT_SCHEDULE_OPTIONS.installDir}),
    user: Flags.string({summary: 'The system user the jobs run as.', default: DEFAULT_SCHEDULE_OPTIONS.user}),
    'env-file': Flags.string({summary: 'The environment file with the configuration (DATABASE_URL, BACKUP_DIR, NOTIFY_*...).', default: DEFAULT_SCHEDULE_OPTIONS.envFile}),
    'key-file': Flags.string({summary: 'The file holding the encryption key, passed to systemd units with LoadCredential=.', default: DEFAULT_SCHEDULE_OPTIONS.keyFile}),
    physical: Flags.boolean({summary: 'The cluster is also backed up physically (backup run --method physical): add a weekly drill of its newest physical backup (backup test-restore --latest --method physical).', default: false}),
    'log-file': Flags.string({summary: "Where cron appends the jobs' output, a file the user must be able to write (default: syslog through logger, tagged synapse-backup; systemd uses the journal)."}),
  };

  async run(): Promise<ScheduleOutput> {
    const {flags} = await this.parse(Schedule);
    const options = validateScheduleOptions({installDir: flags['install-dir'], user: flags.user, envFile: flags['env-file'], keyFile: flags['key-file'], logFile: flags['log-file'], physical: flags.physical});
    const format = flags.cron ? 'cron' : 'systemd';
    const files: UnitFile[] = format === 'cron' ? [{name: 'synapse-backup', text: cronTable(options)}] : systemdUnits(options);
    if (!flags.output) {
      this.print(files.map((file) => (files.length > 1 ? `# ${file.name}\n${file.text}` : file.text)).join('\n'));
      return {format, files: files.map((file) => ({...file, path: null}))};
    }
    const written = [];
    for (const file of files) written.push({...file, path: await writeAtomically(flags.output, file)});
    this.print(`Wrote ${written.map((file) => file.path).join(', ')}.`);
    return {format, files: written};
  }
}

/** A unit file is replaced whole or not at all: systemd must never load half of one. */
async function writeAtomically(directory: string, file: UnitFile): Promise<string> {
  const target = path.resolve(directory, file.name);
  try {
    await writeFileAtomically(target, file.text, {mode: 0o644});
    return target;
  } catch (error) {
    throw new SynapseError('E_CONFIG', {message: `unable to write '${target}': ${(error as Error).message}`, suggestion: 'Pass an --output directory this user can write to (as root for /etc/systemd/system).', cause: error});
  }
}
