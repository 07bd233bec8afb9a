import {Args, Flags} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {formatRestoreTest} from '../../cli/format/index.js';
import {SynapseError} from '../../core/errors/index.js';
import {fromFirstGoodLocation, type SkippedLocation} from '../../core/replication/index.js';
import {selectBackupsToVerify, selectLocatedBackupsToVerify, testRestore, type RestoreTestResult} from '../../core/services/index.js';

/** With several locations, whose copy was loaded, and why those before it were passed over. */
type TestRestoreOutput = RestoreTestResult & {location?: string; skippedLocations?: readonly SkippedLocation[]};

export default class BackupTestRestore extends SynapseCommand<TestRestoreOutput> {
  static override notifies = 'restore-test' as const;
  static override journals = 'restore-test' as const;
  static override summary = 'Prove a backup restorable: load it into a scratch database, compare row counts, drop it.';
  static override description = withEnvironmentHelp(
    `Verifies the backup to its end (as \`backup verify\` does), creates a scratch database synapse_restore_test_<time>_<random> on the configured server, loads the backup into it with psql (under \\restrict, as a restore does), then counts the rows of every table and reads every sequence and compares them with the fingerprint counted in pg_dump's own snapshot at backup time, reporting each table that differs. The scratch database is always dropped afterwards (after success, failure, Ctrl-C or SIGTERM; one left by a killed test restore is dropped by the next). The configured database is never touched. Backups taken before fingerprints existed are loaded and checked for a clean load; the report says the comparison was skipped. Needs CREATEDB. Without a name it tests the newest backup.`,
    COMMAND_ENVIRONMENT.testRestore,
  );

  static override examples = ['<%= config.bin %> <%= command.id %> --latest', '<%= config.bin %> <%= command.id %> backup_daily_20260222_020000.sql.gz.enc --json'];

  static override args = {
    name: Args.string({description: 'Backup name as `backup list` shows it (no directory).', required: false}),
  };

  static override flags = {
    latest: Flags.boolean({summary: 'Test the newest backup (the default).', default: false}),
    'allow-unencrypted': Flags.boolean({summary: 'Accept an unencrypted backup although a key is configured (refused otherwise, as restore refuses it).', default: false}),
    'allow-unsigned-metadata': Flags.boolean({summary: 'Accept a backup whose metadata has no MAC although a key is configured (a legacy backup; refused otherwise, as restore refuses it).', default: false}),
  };

  async run(): Promise<TestRestoreOutput> {
    const {args, flags} = await this.parse(BackupTestRestore);
    if (args.name && flags.latest) throw new SynapseError('E_USAGE', {message: 'unable to test-restore: pass a backup name or --latest, not both'});
    const context = await this.openStoredBackups(args.name, 'test-restore');
    const selection = args.name ? {name: args.name} : {latest: true as const, method: 'logical' as const};
    const [name] = context.locations.length > 1 ? await selectLocatedBackupsToVerify(context, context.locations, selection) : await selectBackupsToVerify(context, selection);
    this.eventFacts.backup = {name: name!};
    const result = await this.display(
      'restore-test',
      [
        {stage: 'verify', title: `Verify ${name}`},
        {stage: 'prepare', title: 'Create scratch database'},
        {stage: 'load', title: 'Decrypt, decompress, load (psql)'},
        {stage: 'compare', title: 'Compare row counts and sequences with the backup'},
        {stage: 'drop', title: 'Drop scratch database'},
      ],
      async () => {
        const chosen = await fromFirstGoodLocation(
          context.locations,
          `test-restore '${name}'`,
          (location) => testRestore({...context, storage: location.storage}, name!, {allowUnencrypted: flags['allow-unencrypted'], allowUnsigned: flags['allow-unsigned-metadata']}),
          (skipped, next) => this.warnUser(`location '${skipped.location}' cannot serve '${name}' (${skipped.reason}); trying location '${next}'`),
        );
        return context.locations.length > 1 ? {...chosen.result, location: chosen.location, skippedLocations: chosen.skipped} : chosen.result;
      },
    );
    this.print(formatRestoreTest(result));
    await this.notify('restore-test.succeeded', {
      backup: {name: result.backupName, type: result.backupType, plaintextBytes: result.plaintextBytes},
      durationMs: result.durationMs,
      details: {comparison: result.comparison.status, tables: result.comparison.tables, sequences: result.comparison.sequences},
    });
    return result;
  }
}
