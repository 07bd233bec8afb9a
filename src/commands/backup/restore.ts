import {Args, Flags} from '@oclif/core';
import path from 'node:path';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {countdown} from '../../cli/countdown.js';
import {formatBytes, formatDuration} from '../../cli/format/index.js';
import {loadEncryptionProviders, openEveryLocation} from '../../cli/runtime.js';
import {fromFirstGoodLocation, type SkippedLocation} from '../../core/replication/index.js';
import {nameForMessage, quoteIdentifier} from '../../core/postgres/index.js';
import {
  assertRestorableName,
  parseTargetLsn,
  parseTargetName,
  parseTargetTime,
  restoreBackup,
  restorePhysicalBackup,
  type PhysicalRestoreResult,
  type RecoveryTarget,
  type RestoreResult,
} from '../../core/services/index.js';
import {shellCommand, shellWord} from '../../core/config/index.js';
import {serverBinDirectory, serverOwner, serverUserCanRun, walFetchCommand} from '../../cli/physical-server.js';
import {SynapseError} from '../../core/errors/index.js';
import {parseBackupName, methodOfBackup} from '../../core/naming/index.js';
import {walCodecFor} from '../../cli/wal/wal-context.js';

const COUNTDOWN_SECONDS = 5;

/** With several locations, which one's copy was restored, and why those before it were passed over. */
type RestoreOutput = (RestoreResult | PhysicalRestoreOutput) & {location?: string; skippedLocations?: readonly SkippedLocation[]};

/** A physical restore: the data directory written, and how to start the server on it. */
type PhysicalRestoreOutput = PhysicalRestoreResult & {readonly startCommand: string; readonly restoreCommand: string; readonly takeOverCommand: string; readonly serverNeeds: readonly string[]};

export default class BackupRestore extends SynapseCommand<RestoreOutput> {
  static override notifies = 'restore' as const;
  static override journals = 'restore' as const;
  static override summary = 'Restore a backup into the configured database, replacing its content; a physical backup into a new data directory, to any point in time.';
  static override description = withEnvironmentHelp(
    `Refuses what it cannot trust: metadata whose MAC does not match the key or, with a key configured, has no MAC (--allow-unsigned-metadata), an unencrypted backup where a key is configured (--allow-unencrypted), a backup of another database (--allow-other-database). Checks the backup's SHA-256 against its metadata and the key against its first block while the countdown runs, and loads nothing until both passed: it loads the backup with psql under \\restrict (no meta-command in the dump runs) into a new database and swaps names with the target in one transaction, so that a restore killed at any moment leaves the target as it was or fully swapped. One restore per database at a time (a second exits 11). The previous database is kept as <name>_pre_restore_<timestamp> until you drop it. Sessions connected to the target are ended at the swap. Needs CREATEDB and ownership of the target database.`,
    COMMAND_ENVIRONMENT.restore,
  );

  static override examples = [
    '<%= config.bin %> <%= command.id %> backup_daily_20260222_020000.sql.gz.enc',
    '<%= config.bin %> <%= command.id %> backup_daily_20260222_020000.sql.gz.enc --yes --json',
    "<%= config.bin %> <%= command.id %> backup_daily_20260222_020000.tar.zst.enc --data-dir /var/lib/postgresql/15/restored --target-time '2026-02-22 14:29:59+00'",
    '<%= config.bin %> <%= command.id %> backup_daily_20260222_020000.tar.zst.enc --data-dir /var/lib/postgresql/15/restored --latest',
  ];

  static override args = {
    file: Args.string({description: 'Backup name as `backup list` shows it (no directory).', required: true}),
  };

  static override flags = {
    yes: Flags.boolean({char: 'y', summary: `Start at once, without the ${COUNTDOWN_SECONDS}-second countdown.`, default: false}),
    'allow-unencrypted': Flags.boolean({summary: 'Restore an unencrypted backup although a key is configured (refused otherwise: it may have been planted).', default: false}),
    'allow-unsigned-metadata': Flags.boolean({
      summary: 'Restore a backup whose metadata has no MAC although a key is configured (written before synapse-backup signed metadata; refused otherwise, since a stripped MAC looks the same). Nothing privileged is taken from it.',
      default: false,
    }),
    'grant-superuser-equivalent': Flags.boolean({
      summary:
        "With --create-roles: also make created roles members of superuser roles and of pg_execute_server_program, pg_read_server_files or pg_write_server_files, as the (authentic) backup records. RISK: such a member can act as a superuser and as the server's operating-system account.",
      default: false,
      dependsOn: ['create-roles'],
    }),
    'allow-other-database': Flags.boolean({summary: 'Restore a backup taken from a database of another name over the configured one.', default: false}),
    'no-owner': Flags.boolean({summary: "Leave out the dump's ALTER ... OWNER TO statements: the restoring role owns everything (a quick restore anywhere).", default: false}),
    'no-privileges': Flags.boolean({summary: "Leave out the dump's GRANT, REVOKE and ALTER DEFAULT PRIVILEGES statements (with --no-owner, a restore onto a server without the backup's roles).", default: false}),
    'create-roles': Flags.boolean({
      summary: 'Create the roles the backup records (owners, grantees, their memberships and settings) that this server lacks, before loading; existing roles are never changed.',
      default: false,
    }),
    'data-dir': Flags.string({
      summary: 'For a physical backup: the new (or empty) directory to restore the cluster into, with recovery.signal and the recovery settings; never a running server\'s.',
    }),
    'target-time': Flags.string({
      summary: "With --data-dir: recover to this time, 'YYYY-MM-DD HH:MM:SS[+TZ]' (UTC without a zone); transactions committed after it are not replayed.",
      dependsOn: ['data-dir'],
      exclusive: ['target-lsn', 'target-name', 'latest'],
    }),
    'target-lsn': Flags.string({summary: 'With --data-dir: recover to this WAL position (X/Y).', dependsOn: ['data-dir'], exclusive: ['target-time', 'target-name', 'latest']}),
    'target-name': Flags.string({summary: 'With --data-dir: recover to this restore point (pg_create_restore_point).', dependsOn: ['data-dir'], exclusive: ['target-time', 'target-lsn', 'latest']}),
    latest: Flags.boolean({summary: 'With --data-dir: replay all the archived WAL (the default).', dependsOn: ['data-dir'], exclusive: ['target-time', 'target-lsn', 'target-name']}),
    owner: Flags.string({summary: 'With --data-dir, run as root: the user the server runs as, who is given the restored files (default postgres).', dependsOn: ['data-dir']}),
    'allow-unauthenticated': Flags.boolean({
      summary: 'With --data-dir: restore a physical backup that cannot be authenticated (no key configured). RISK: its files, its configuration among them, are run by the server unchecked.',
      dependsOn: ['data-dir'],
    }),
  };

  async run(): Promise<RestoreOutput> {
    const {args, flags} = await this.parse(BackupRestore);
    this.eventFacts.backup = {name: args.file};
    assertRestorableName(args.file);
    const physical = methodOfBackup(parseBackupName(args.file)!) === 'physical';
    if (physical && !flags['data-dir']) {
      throw new SynapseError('E_USAGE', {
        message: `unable to restore '${args.file}' into a database: it is a physical backup of a whole cluster`,
        suggestion: `Restore it into a new data directory and start a server on it: synapse-backup backup restore ${args.file} --data-dir DIR [--target-time '...' | --latest]`,
      });
    }
    if (flags['data-dir']) return this.restorePhysical(args.file, flags);
    const settings = this.loadSettings([]);
    const storageOptions = {signal: this.signal, onWarning: (message: string) => this.warnUser(message)};
    const {opened} = await openEveryLocation(this.config, settings, 'read', storageOptions);
    this.journalIn(opened[0]!.storage, settings);
    const encryptionProviders = await loadEncryptionProviders(this.config);
    const chosen = await this.display(
      'restore',
      [
        {stage: 'verify', title: 'Verify checksum (SHA-256)'},
        {stage: 'decrypt', title: 'Check key'},
        {stage: 'confirm', title: `Countdown (${COUNTDOWN_SECONDS} s)`},
        {stage: 'prepare', title: 'Create scratch database'},
        {stage: 'load', title: 'Decrypt, decompress, load (psql)'},
        {stage: 'swap', title: 'Swap in restored database'},
      ],
      () =>
        fromFirstGoodLocation(
          opened,
          `restore '${args.file}'`,
          (location) =>
            restoreBackup(
              {settings, storage: location.storage, encryptionProviders, events: this.events, signal: this.signal},
              {
                name: args.file,
                allowUnencrypted: flags['allow-unencrypted'],
                allowUnsigned: flags['allow-unsigned-metadata'],
                allowSuperuserEquivalentGrants: flags['grant-superuser-equivalent'],
                allowOtherDatabase: flags['allow-other-database'],
                createRoles: flags['create-roles'],
                skip: {owners: flags['no-owner'], privileges: flags['no-privileges']},
                confirm: async (plan, checksFailed) => {
                  const replacing = plan.targetExists ? `replace the content of database '${plan.database}' (kept as '${plan.previousDatabase}')` : `create database '${plan.database}'`;
                  const message = `Restoring ${plan.backupName} (a backup of database '${plan.sourceDatabase}') will ${replacing}.`;
                  if (flags.yes) {
                    this.events.stage('confirm', 'skipped', {detail: `--yes: ${message}`});
                    return;
                  }
                  this.events.stage('confirm', 'started');
                  const onTick = this.displayMode === 'interactive' ? (left: number) => this.events.stage('confirm', 'progress', {detail: `${message} Starting in ${left} s; press Ctrl-C to cancel.`}) : undefined;
                  try {
                    await countdown(message, COUNTDOWN_SECONDS, AbortSignal.any([this.signal, checksFailed]), onTick);
                  } catch (error) {
                    this.events.stage('confirm', 'skipped', {detail: 'cancelled'});
                    throw error;
                  }
                  this.events.stage('confirm', 'finished', {detail: 'not cancelled'});
                },
              },
            ),
          (skipped, next) => this.warnUser(`location '${skipped.location}' cannot serve '${args.file}' (${skipped.reason}); trying location '${next}'`),
        ),
    );
    const result: RestoreOutput = settings.locations.length > 1 ? {...chosen.result, location: chosen.location, skippedLocations: chosen.skipped} : chosen.result;
    this.print(
      `Restored ${result.backupName} (a backup of database '${result.sourceDatabase}') into database '${result.database}' (${formatBytes(result.plaintextBytes)} of SQL in ${formatDuration(result.durationMs)})${settings.locations.length > 1 ? ` from location '${chosen.location}'` : ''}.` +
        (result.createdRoles.length > 0 ? `\nCreated the roles ${result.createdRoles.map((role) => nameForMessage(role)).join(', ')}.` : '') +
        (result.previousDatabase ? `\nThe previous database is kept as '${result.previousDatabase}'; drop it when you no longer need it: DROP DATABASE ${quoteIdentifier(result.previousDatabase)};` : ''),
    );
    await this.notify('restore.succeeded', {
      database: result.database,
      backup: {name: result.backupName, type: result.metadata.backupType, storedBytes: result.metadata.sizes.storedBytes, plaintextBytes: result.plaintextBytes},
      durationMs: result.durationMs,
      details: {sourceDatabase: result.sourceDatabase, previousDatabase: result.previousDatabase ?? null, ...(settings.locations.length > 1 ? {location: chosen.location, skippedLocations: chosen.skipped} : {})},
    });
    return result;
  }

  private async restorePhysical(name: string, flags: {'data-dir'?: string; 'target-time'?: string; 'target-lsn'?: string; 'target-name'?: string; owner?: string; 'allow-unauthenticated'?: boolean}): Promise<PhysicalRestoreOutput> {
    const target: RecoveryTarget = flags['target-time'] ? parseTargetTime(flags['target-time']) : flags['target-lsn'] ? parseTargetLsn(flags['target-lsn']) : flags['target-name'] ? parseTargetName(flags['target-name']) : {kind: 'latest'};
    const settings = this.loadSettings(['wal-archive']);
    const dataDirectory = path.resolve(flags['data-dir']!);
    const owner = serverOwner(flags.owner, `restore into '${dataDirectory}'`);
    const {restoreCommand, serverNeeds, assignments} = walFetchCommand(settings, this.config.root);
    const {opened} = await openEveryLocation(this.config, settings, 'read', {signal: this.signal, onWarning: (message: string) => this.warnUser(message)});
    this.journalIn(opened[0]!.storage, settings);
    const encryptionProviders = await loadEncryptionProviders(this.config);
    const walCodec = await walCodecFor(this.config, settings);
    const chosen = await this.display(
      'restore',
      [
        {stage: 'prepare', title: 'Check target against the backup and the archived WAL'},
        {stage: 'verify', title: 'Verify checksum (SHA-256)'},
        {stage: 'decrypt', title: 'Check key'},
        {stage: 'extract', title: `Decrypt, decompress, extract into ${dataDirectory}`},
        {stage: 'configure', title: 'Write recovery settings'},
      ],
      () =>
        fromFirstGoodLocation(
          opened,
          `restore '${name}'`,
          (location) =>
            restorePhysicalBackup(
              {settings, storage: location.storage, encryptionProviders, events: this.events, signal: this.signal},
              {name, dataDirectory, target, restoreCommand, owner, allowUnauthenticated: flags['allow-unauthenticated'] === true, walCodec},
            ),
          (skipped, next) => this.warnUser(`location '${skipped.location}' cannot serve '${name}' (${skipped.reason}); trying location '${next}'`),
        ),
    );
    const result = chosen.result;
    const major = Math.floor(result.metadata.database.serverVersionNum / 10_000);
    const pgCtl = path.join(serverBinDirectory(settings, major, 'pg_ctl'), 'pg_ctl');
    const start = `${pgCtl} -D ${dataDirectory} -l ${dataDirectory}.log start`;
    const startCommand = owner ? `runuser -u ${owner.name} -- ${start}` : start;
    if (owner) {
      const probe = await serverUserCanRun(owner.name, settings, this.config.root);
      if (!probe.ok) this.warnUser(probe.message);
    }
    // Promoted with archive_mode off, the server marks its timeline history for no archiver: it is pushed by hand when the server takes over.
    const history = `pg_wal/${result.nextTimeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
    const push = `cd ${shellWord(dataDirectory)} && ${shellCommand(assignments, [path.join(this.config.root, 'bin', 'synapse-backup'), 'wal', 'push', history])}`;
    const takeOverCommand = owner ? `runuser -u ${owner.name} -- sh -c ${shellWord(push)}` : push;
    this.print(
      [
        `Restored ${result.backupName} into ${dataDirectory} (${formatBytes(result.extractedBytes)} in ${formatDuration(result.durationMs)}); recovery target: ${result.target}, WAL archived through ${result.archiveReach.throughWalFile} (timeline ${result.archiveReach.timeline}).`,
        ...(result.writtenConfiguration.length > 0 ? [`The backup holds no ${result.writtenConfiguration.join(', ')} (the cluster kept its configuration elsewhere): minimal ones were written; add the settings the server needs.`] : []),
        ...serverNeeds.map((need) => `The server's environment needs ${need}.`),
        `Start the server to recover and promote (it stops at the target, then accepts connections):`,
        `  ${startCommand}`,
        `Its archive_mode is off, so that it never archives into the archive it came from. Once it takes over, remove that line from ${path.join(dataDirectory, 'postgresql.auto.conf')}, restart it, and archive the history of its new timeline (written while archiving was off):`,
        `  ${takeOverCommand}`,
      ].join('\n'),
    );
    await this.notify('restore.succeeded', {
      backup: {name: result.backupName, type: result.metadata.backupType, storedBytes: result.metadata.sizes.storedBytes, plaintextBytes: result.extractedBytes},
      durationMs: result.durationMs,
      details: {dataDirectory, target: result.target, ...(settings.locations.length > 1 ? {location: chosen.location} : {})},
    });
    return {...result, startCommand, restoreCommand, takeOverCommand, serverNeeds};
  }
}
