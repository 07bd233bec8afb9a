import {SynapseError} from '../errors/index.js';

/** Where and as whom the scheduled commands run: defaults as the README installs synapse-backup. */
export interface ScheduleOptions {
  readonly installDir: string;
  readonly user: string;
  readonly envFile: string;
  /** Passed to systemd units with LoadCredential=, never through the environment file. */
  readonly keyFile: string;
  /**
   * Where cron appends the jobs' output; undefined (the default): to syslog, tagged synapse-backup
   * (`journalctl -t synapse-backup`), which works for any user on a stock system. systemd's goes to the journal.
   */
  readonly logFile: string | undefined;
  /** The cluster is also backed up physically: a weekly drill of its newest physical backup is added. */
  readonly physical?: boolean;
}

export const DEFAULT_SCHEDULE_OPTIONS: ScheduleOptions = {
  installDir: '/opt/synapse-backup',
  user: 'postgres',
  envFile: '/etc/synapse-backup/env',
  keyFile: '/etc/synapse-backup/key',
  logFile: undefined,
};

/** The syslog tag of cron's output. */
export const SYSLOG_TAG = 'synapse-backup';

/** One scheduled job: when (as cron and as systemd say it) and what. */
interface Job {
  readonly id: string;
  readonly description: string;
  readonly args: string;
  readonly cron: string;
  readonly onCalendar: string;
  /** Spreads a fleet's runs so that they do not all hit one storage at the same second. */
  readonly randomizedDelay?: string;
  /** Catch up a run missed while the machine was off. */
  readonly persistent: boolean;
}

export const SCHEDULED_JOBS: readonly Job[] = [
  {id: 'hourly', description: 'hourly backup', args: 'backup run --backup-type hourly', cron: '5 * * * *', onCalendar: '*-*-* *:05:00', randomizedDelay: '5min', persistent: true},
  {id: 'daily', description: 'daily backup', args: 'backup run --backup-type daily --verify', cron: '15 2 * * *', onCalendar: '*-*-* 02:15:00', randomizedDelay: '15min', persistent: true},
  {id: 'monthly', description: 'monthly backup', args: 'backup run --backup-type monthly --verify', cron: '25 3 1 * *', onCalendar: '*-*-01 03:25:00', randomizedDelay: '15min', persistent: true},
  {id: 'cleanup', description: 'retention cleanup', args: 'backup cleanup', cron: '45 * * * *', onCalendar: '*-*-* *:45:00', persistent: true},
  {id: 'status', description: 'status check with alerts', args: 'status --notify', cron: '*/5 * * * *', onCalendar: '*:0/5', persistent: false},
  {id: 'restore-test', description: 'weekly restore test', args: 'backup test-restore --latest', cron: '30 4 * * 0', onCalendar: 'Sun *-*-* 04:30:00', randomizedDelay: '30min', persistent: true},
];

/** With --physical: recover the newest physical backup on a scratch server once a week and check it (backup test-restore of a physical backup). */
export const DRILL_JOB: Job = {id: 'restore-drill', description: 'weekly drill of the newest physical backup', args: 'backup test-restore --latest --method physical', cron: '30 5 * * 0', onCalendar: 'Sun *-*-* 05:30:00', randomizedDelay: '30min', persistent: true};

/** The jobs a schedule holds: every one above, and the drill where physical backups are taken. */
export function scheduledJobs(options: Pick<ScheduleOptions, 'physical'>): readonly Job[] {
  return options.physical ? [...SCHEDULED_JOBS, DRILL_JOB] : SCHEDULED_JOBS;
}

/** Characters that could end a line or a directive, start a systemd specifier (%) or need quoting in either format. */
const UNSAFE_PATH = /[^A-Za-z0-9_./+@-]/;
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}\$?$/;

/**
 * Refuses what could not be written into a unit or a crontab as it is: a relative path, a path with
 * a space, a quote, a newline or a `%` (which both cron and systemd would interpret), a user name
 * that is not one.
 */
export function validateScheduleOptions(options: ScheduleOptions): ScheduleOptions {
  const paths: Array<[string, string]> = [
    ['--install-dir', options.installDir],
    ['--env-file', options.envFile],
    ['--key-file', options.keyFile],
    ...(options.logFile === undefined ? [] : [['--log-file', options.logFile] as [string, string]]),
  ];
  for (const [flag, value] of paths) {
    if (!value.startsWith('/') || UNSAFE_PATH.test(value) || value.split('/').includes('..')) {
      throw new SynapseError('E_USAGE', {
        message: `unable to schedule with ${flag} '${value}': expected an absolute path of letters, digits and . _ - + @ only`,
        suggestion: 'Pass an absolute path without spaces, quotes, % or ..; systemd and cron would each read those differently.',
      });
    }
  }
  if (!USER_NAME.test(options.user)) {
    throw new SynapseError('E_USAGE', {message: `unable to schedule for --user '${options.user}': not a user name`, suggestion: 'Pass the name of the system user that runs the backups, e.g. postgres.'});
  }
  return options;
}

const launcher = (options: ScheduleOptions): string => `${options.installDir.replace(/\/+$/, '')}/bin/synapse-backup`;

/**
 * Where a job's output goes. A redirection sh cannot open makes it skip the whole command, so the
 * default pipes into logger(1), which the job's user can always run: the command runs whatever
 * becomes of its output. A --log-file must be writable by the user; the table says so.
 */
function outputOf(options: ScheduleOptions): string {
  return options.logFile === undefined ? `2>&1 | logger -t ${SYSLOG_TAG}` : `>> ${options.logFile} 2>&1`;
}

/** An /etc/cron.d file: every job, as `user`, with the environment file loaded and its output kept. */
export function cronTable(options: ScheduleOptions): string {
  const lines = [
    '# synapse-backup schedule: install as /etc/cron.d/synapse-backup (owned by root, mode 0644).',
    `# The configuration, the key file (BACKUP_ENCRYPTION_KEY_FILE) included, comes from ${options.envFile}, readable by ${options.user} only.`,
    options.logFile === undefined
      ? `# Output goes to syslog, tagged ${SYSLOG_TAG}: journalctl -t ${SYSLOG_TAG} (or /var/log/syslog where rsyslog runs).`
      : `# Output is appended to ${options.logFile}, which must exist and be writable by ${options.user}: where sh cannot open it, it skips the job.`,
    '# Overlapping runs are safe: a second backup exits 11 and changes nothing.',
    'SHELL=/bin/sh',
    'PATH=/usr/local/bin:/usr/bin:/bin',
    '# m h dom mon dow user command',
  ];
  for (const job of scheduledJobs(options)) {
    lines.push(`# ${job.description}`, `${job.cron} ${options.user} set -a && . ${options.envFile} && ${launcher(options)} ${job.args} ${outputOf(options)}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface UnitFile {
  readonly name: string;
  readonly text: string;
}

/** The credential's name inside $CREDENTIALS_DIRECTORY. */
const KEY_CREDENTIAL = 'synapse-backup-key';

function serviceUnit(job: Job, options: ScheduleOptions): string {
  return [
    '[Unit]',
    `Description=synapse-backup ${job.description}`,
    'Wants=network-online.target',
    'After=network-online.target postgresql.service',
    '',
    '[Service]',
    'Type=oneshot',
    `User=${options.user}`,
    `EnvironmentFile=${options.envFile}`,
    // The key reaches the service as a credential only it can read, never through its environment.
    `LoadCredential=${KEY_CREDENTIAL}:${options.keyFile}`,
    `Environment=BACKUP_ENCRYPTION_KEY_FILE=%d/${KEY_CREDENTIAL}`,
    `ExecStart=${launcher(options)} ${job.args}`,
    'Nice=10',
    'IOSchedulingClass=best-effort',
    'IOSchedulingPriority=7',
    'UMask=0077',
    'PrivateTmp=true',
    'ProtectSystem=full',
    'NoNewPrivileges=true',
    'ProtectKernelTunables=true',
    'ProtectKernelModules=true',
    'ProtectControlGroups=true',
    'RestrictSUIDSGID=true',
    'LockPersonality=true',
    '',
  ].join('\n');
}

function timerUnit(job: Job, service: string): string {
  return [
    '[Unit]',
    `Description=synapse-backup ${job.description} schedule`,
    '',
    '[Timer]',
    `OnCalendar=${job.onCalendar}`,
    ...(job.randomizedDelay ? [`RandomizedDelaySec=${job.randomizedDelay}`] : []),
    `Persistent=${job.persistent}`,
    `Unit=${service}`,
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
}

/** A service and a timer per job, named synapse-backup-<job>.service and .timer. */
export function systemdUnits(options: ScheduleOptions): UnitFile[] {
  return scheduledJobs(options).flatMap((job) => {
    const service = `synapse-backup-${job.id}.service`;
    return [
      {name: service, text: serviceUnit(job, options)},
      {name: `synapse-backup-${job.id}.timer`, text: timerUnit(job, service)},
    ];
  });
}
