import {Args, Flags} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {formatPhysicalDrill, formatRestoreTest} from '../../cli/format/index.js';
import {SynapseError} from '../../core/errors/index.js';
import {serverBinDirectory, serverOwner, serverUserCanRun, walFetchCommand} from '../../cli/physical-server.js';
import {walCodecFor} from '../../cli/wal/wal-context.js';
import {BACKUP_METHODS, methodOfBackup, parseBackupName, type BackupMethod} from '../../core/naming/index.js';
import {fromFirstGoodLocation, type SkippedLocation} from '../../core/replication/index.js';
import {
  drillPhysicalBackup,
  parseTargetLsn,
  parseTargetTime,
  selectBackupsToVerify,
  selectLocatedBackupsToVerify,
  testRestore,
  type PhysicalDrillResult,
  type RecoveryTarget,
  type RestoreTestResult,
} from '../../core/services/index.js';

/** With several locations, whose copy was loaded, and why those before it were passed over. */
type TestRestoreOutput = (RestoreTestResult | PhysicalDrillResult) & {location?: string; skippedLocations?: readonly SkippedLocation[]};

export default class BackupTestRestore extends SynapseCommand<TestRestoreOutput> {
  static override notifies = 'restore-test' as const;
  static override journals = 'restore-test' as const;
  static override summary = 'Prove a backup restorable: load it into a scratch database and compare row counts, or recover a physical one on a scratch server and check it.';
  static override description = withEnvironmentHelp(
    `Verifies the backup to its end (as \`backup verify\` does), creates a scratch database synapse_restore_test_<time>_<random> on the configured server, loads the backup into it with psql (under \\restrict, as a restore does), then counts the rows of every table and reads every sequence and compares them with the fingerprint counted in pg_dump's own snapshot at backup time, reporting each table that differs. The scratch database is always dropped afterwards (after success, failure, Ctrl-C or SIGTERM; one left by a killed test restore is dropped by the next). The configured database is never touched. Backups taken before fingerprints existed are loaded and checked for a clean load; the report says the comparison was skipped. Needs CREATEDB. Without a name it tests the newest backup.\n\nA physical backup (or --method physical) is drilled instead: restored, as \`backup restore --data-dir\` restores it, into a scratch directory synapse-drill-<time>_<random> under BACKUP_DRILL_DIR (default the temporary directory; it needs the room of one restored cluster, checked first), recovered by a server of its own (the backup's major version, socket only, archive_mode off, run as postgres when this runs as root) to the end of the archived WAL or to --target-time/--target-lsn, promoted, then checked: the system identifier is the backup's, recovery ended where the archive ends (PostgreSQL promotes at the first segment it cannot restore; the drill fails naming it) or at the target, every database accepts connections, and pg_amcheck finds nothing (heap and B-tree indexes, every database; where amcheck is not available, every table is read instead and the report says so). The server is stopped and the directory removed afterwards, after a failure, Ctrl-C or SIGTERM too; what a killed drill left is removed by the next one. The production server is never touched.`,
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
    method: Flags.string({summary: 'With --latest: the newest backup of this method (default logical; physical with a target flag).', options: [...BACKUP_METHODS]}),
    'target-time': Flags.string({summary: "Physical: recover to this time ('YYYY-MM-DD HH:MM:SS[+TZ]', UTC without a zone) and check that recovery stopped there.", exclusive: ['target-lsn', 'to-end']}),
    'target-lsn': Flags.string({summary: 'Physical: recover to this WAL position (X/Y) and check that recovery stopped there.', exclusive: ['target-time', 'to-end']}),
    'to-end': Flags.boolean({summary: 'Physical: recover all archived WAL and check that replay reached the newest archived segment (the default).', exclusive: ['target-time', 'target-lsn']}),
    owner: Flags.string({summary: 'Physical, run as root: the user the drill\'s server runs as (default postgres).'}),
    'allow-unauthenticated': Flags.boolean({summary: 'Physical: drill a backup that cannot be authenticated (no key configured); its files are run by the scratch server unchecked.', default: false}),
  };

  async run(): Promise<TestRestoreOutput> {
    const {args, flags} = await this.parse(BackupTestRestore);
    if (args.name && flags.latest) throw new SynapseError('E_USAGE', {message: 'unable to test-restore: pass a backup name or --latest, not both'});
    const context = await this.openStoredBackups(args.name, 'test-restore');
    const targetGiven = flags['target-time'] !== undefined || flags['target-lsn'] !== undefined || flags['to-end'] === true;
    const method: BackupMethod = args.name ? methodOfBackup(parseBackupName(args.name) ?? {}) : ((flags.method as BackupMethod | undefined) ?? (targetGiven ? 'physical' : 'logical'));
    if (method === 'logical' && (targetGiven || flags.owner || flags['allow-unauthenticated'])) {
      throw new SynapseError('E_USAGE', {message: `unable to test-restore${args.name ? ` '${args.name}'` : ''}: --target-time, --target-lsn, --to-end, --owner and --allow-unauthenticated are for physical backups, and this one is logical`, suggestion: 'Pass the name of a physical backup, or --latest --method physical.'});
    }
    const selection = args.name ? {name: args.name} : {latest: true as const, method};
    const [name] = context.locations.length > 1 ? await selectLocatedBackupsToVerify(context, context.locations, selection) : await selectBackupsToVerify(context, selection);
    this.eventFacts.backup = {name: name!};
    if (method === 'physical') return this.drill(context, name!, flags);
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

  /** A physical backup: restored into a scratch directory, recovered by a server of its own, checked, removed. */
  private async drill(
    context: Awaited<ReturnType<BackupTestRestore['openStoredBackups']>>,
    name: string,
    flags: {'target-time'?: string; 'target-lsn'?: string; owner?: string; 'allow-unauthenticated'?: boolean},
  ): Promise<TestRestoreOutput> {
    const target: RecoveryTarget = flags['target-time'] ? parseTargetTime(flags['target-time']) : flags['target-lsn'] ? parseTargetLsn(flags['target-lsn']) : {kind: 'latest'};
    const {settings} = context;
    const owner = serverOwner(flags.owner, `drill '${name}'`);
    const {restoreCommand, serverNeeds} = walFetchCommand(settings, this.config.root);
    if (serverNeeds.length > 0) {
      throw new SynapseError('E_CONFIG', {
        message: `unable to drill '${name}': the drill's server runs \`wal fetch\` with the settings that hold no secret, and it would also need ${serverNeeds.join('; ')}`,
        suggestion: 'Give the key (and any S3 credentials) in files, as the server that recovers a backup needs them: BACKUP_ENCRYPTION_KEY_FILE, and a profile in ~/.aws/credentials with AWS_PROFILE.',
      });
    }
    if (owner) {
      const probe = await serverUserCanRun(owner.name, settings, this.config.root);
      if (!probe.ok) throw new SynapseError('E_CONFIG', {message: `unable to drill '${name}': ${probe.message}`});
    }
    const walCodec = await walCodecFor(this.config, settings);
    const result = await this.display(
      'restore-test',
      [
        {stage: 'prepare', title: 'Check the archived WAL against the backup'},
        {stage: 'verify', title: 'Verify checksum (SHA-256)'},
        {stage: 'decrypt', title: 'Check key'},
        {stage: 'extract', title: 'Decrypt, decompress, extract into a scratch directory'},
        {stage: 'configure', title: 'Write recovery settings'},
        {stage: 'recover', title: 'Recover and promote on a scratch server'},
        {stage: 'check', title: 'Check system identifier, end of replay, databases, pg_amcheck'},
        {stage: 'drop', title: 'Stop the scratch server, remove its directory'},
      ],
      async () => {
        const chosen = await fromFirstGoodLocation(
          context.locations,
          `drill '${name}'`,
          (location) =>
            drillPhysicalBackup(
              {...context, storage: location.storage},
              {name, target, restoreCommand, owner, binDirectoryFor: (major) => serverBinDirectory(settings, major), walCodec, allowUnauthenticated: flags['allow-unauthenticated'] === true, roles: [...new Set([settings.database.clientConfig().user, 'postgres'].filter((role): role is string => Boolean(role)))]},
            ),
          (skipped, next) => this.warnUser(`location '${skipped.location}' cannot serve '${name}' (${skipped.reason}); trying location '${next}'`),
        );
        return context.locations.length > 1 ? {...chosen.result, location: chosen.location, skippedLocations: chosen.skipped} : chosen.result;
      },
    );
    this.print(formatPhysicalDrill(result));
    await this.notify('restore-test.succeeded', {
      backup: {name: result.backupName, type: result.backupType, plaintextBytes: result.extractedBytes},
      durationMs: result.durationMs,
      details: {method: 'physical', recoveryEnd: result.recoveryEnd.lsn, replayedBytes: result.replayedBytes, integrity: result.integrity.tool},
    });
    return result;
  }
}
