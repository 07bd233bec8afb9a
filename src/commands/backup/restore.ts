import {Args, Flags} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {countdown} from '../../cli/countdown.js';
import {formatBytes, formatDuration} from '../../cli/format/index.js';
import {loadEncryptionProviders, openEveryLocation} from '../../cli/runtime.js';
import {fromFirstGoodLocation, type SkippedLocation} from '../../core/replication/index.js';
import {nameForMessage, quoteIdentifier} from '../../core/postgres/index.js';
import {assertRestorableName, restoreBackup, type RestoreResult} from '../../core/services/index.js';

const COUNTDOWN_SECONDS = 5;

/** With several locations, which one's copy was restored, and why those before it were passed over. */
type RestoreOutput = RestoreResult & {location?: string; skippedLocations?: readonly SkippedLocation[]};

export default class BackupRestore extends SynapseCommand<RestoreOutput> {
  static override notifies = 'restore' as const;
  static override journals = 'restore' as const;
  static override summary = 'Restore a backup into the configured database, replacing its content.';
  static override description = withEnvironmentHelp(
    `Refuses what it cannot trust: metadata whose MAC does not match the key or, with a key configured, has no MAC (--allow-unsigned-metadata), an unencrypted backup where a key is configured (--allow-unencrypted), a backup of another database (--allow-other-database). Checks the backup's SHA-256 against its metadata and the key against its first block while the countdown runs, and loads nothing until both passed: it loads the backup with psql under \\restrict (no meta-command in the dump runs) into a new database and swaps names with the target in one transaction, so that a restore killed at any moment leaves the target as it was or fully swapped. One restore per database at a time (a second exits 11). The previous database is kept as <name>_pre_restore_<timestamp> until you drop it. Sessions connected to the target are ended at the swap. Needs CREATEDB and ownership of the target database.`,
    COMMAND_ENVIRONMENT.restore,
  );

  static override examples = [
    '<%= config.bin %> <%= command.id %> backup_daily_20260222_020000.sql.gz.enc',
    '<%= config.bin %> <%= command.id %> backup_daily_20260222_020000.sql.gz.enc --yes --json',
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
  };

  async run(): Promise<RestoreOutput> {
    const {args, flags} = await this.parse(BackupRestore);
    this.eventFacts.backup = {name: args.file};
    assertRestorableName(args.file);
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
}
