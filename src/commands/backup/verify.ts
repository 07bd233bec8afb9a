import {Args, Flags} from '@oclif/core';

import {walCodecFor} from '../../cli/wal/wal-context.js';
import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {formatVerifyReport} from '../../cli/format/index.js';
import {SynapseError} from '../../core/errors/index.js';
import {COPY_FAILURE_CODES, type SkippedLocation} from '../../core/replication/index.js';
import {selectBackupsToVerify, selectLocatedBackupsToVerify, verifyBackup, type VerifyReport, type VerifySelection} from '../../core/services/index.js';

interface VerifyOutput {
  readonly backups: readonly VerifyReport[];
  readonly verified: number;
  readonly failed: number;
}

export default class BackupVerify extends SynapseCommand<VerifyOutput> {
  static override notifies = 'verify' as const;
  static override journals = 'verify' as const;
  static override summary = 'Verify backups without restoring them: checksums, key, decompression and dump completeness.';
  static override description = withEnvironmentHelp(
    `Touches no database. Reads each backup's stored file once, to its end, and checks its size and SHA-256 against the metadata (and, with a key, the metadata's MAC); with a key, or for an unencrypted backup, it also decrypts and decompresses the whole stream, which catches a wrong key, a bad gzip or zstd checksum and a truncated stream, checks the SQL's size and SHA-256 recorded at backup time, and checks that the dump ends with pg_dump's "dump complete" line. Without a key it checks what it can and lists what it skipped. Exits non-zero when any backup fails (13 for damage, 12 for a wrong key, 14 for one that is not authentic), naming the backup and the check. Without a name or flag it verifies the newest backup.`,
    COMMAND_ENVIRONMENT.verify,
  );

  static override examples = [
    '<%= config.bin %> <%= command.id %> --latest',
    '<%= config.bin %> <%= command.id %> backup_daily_20260222_020000.sql.gz.enc',
    '<%= config.bin %> <%= command.id %> --all --json',
  ];

  static override args = {
    name: Args.string({description: 'Backup name as `backup list` shows it (no directory).', required: false}),
  };

  static override flags = {
    latest: Flags.boolean({summary: 'Verify the newest backup (the default).', default: false, exclusive: ['all']}),
    all: Flags.boolean({summary: 'Verify every backup in the storage, newest first.', default: false, exclusive: ['latest']}),
    'allow-unencrypted': Flags.boolean({summary: 'Accept an unencrypted backup although a key is configured (refused otherwise, as restore refuses it).', default: false}),
    'allow-unsigned-metadata': Flags.boolean({summary: 'Accept a backup whose metadata has no MAC although a key is configured (a legacy backup; refused otherwise, as restore refuses it).', default: false}),
  };

  async run(): Promise<VerifyOutput> {
    const {args, flags} = await this.parse(BackupVerify);
    if (args.name && (flags.all || flags.latest)) {
      throw new SynapseError('E_USAGE', {message: 'unable to verify: pass a backup name, --latest or --all, not several'});
    }
    const context = await this.openStoredBackups(args.name, 'verify');
    const {locations} = context;
    // A physical backup's WAL is checked in the archive beside it.
    const walCodec = await walCodecFor(this.config, context.settings);
    const replicated = locations.length > 1;
    const selection: VerifySelection = args.name ? {name: args.name} : flags.all ? {all: true} : {latest: true};
    const names = replicated ? await selectLocatedBackupsToVerify(context, locations, selection) : await selectBackupsToVerify(context, selection);
    if (names.length === 1) this.eventFacts.backup = {name: names[0]};

    const reports: VerifyReport[] = [];
    for (const name of names) {
      let report: VerifyReport | undefined;
      const skipped: SkippedLocation[] = [];
      // The first location whose copy verifies; one that does not is said (and recorded there), and the next one read.
      for (const [index, location] of locations.entries()) {
        const where = replicated ? ` at ${location.name}` : '';
        report = await this.display('backup', [{stage: 'verify', title: `Read back ${name}${where}`}], () =>
          verifyBackup({...context, storage: location.storage, walCodec}, name, {allowUnencrypted: flags['allow-unencrypted'], allowUnsigned: flags['allow-unsigned-metadata']}),
        );
        if (replicated) report = {...report, location: location.name};
        this.print(formatVerifyReport(report));
        if (report.failure?.checksumMismatch) {
          await this.notify('alert.checksum_failed', {
            backup: {name, type: report.backupType, storedBytes: report.storedBytes},
            error: {code: report.failure.code, exitStatus: 13, message: `backup '${name}'${where} failed verification: ${report.failure.message}`, suggestion: 'Take a new backup now and check the storage for faults.'},
            ...(replicated ? {details: {location: location.name}} : {}),
          });
        }
        const next = locations[index + 1];
        if (!report.failure || !next || !COPY_FAILURE_CODES.has(report.failure.code)) break;
        this.warnUser(`the copy of '${name}' at location '${location.name}' failed verification (${report.failure.message}); verifying the copy at location '${next.name}'`);
        skipped.push({location: location.name, code: report.failure.code, reason: report.failure.message});
      }
      reports.push(skipped.length > 0 ? {...report!, skippedLocations: skipped} : report!);
    }
    const failed = reports.filter((report) => report.failure);
    if (names.length === 0) this.print(`No backups to verify in ${replicated ? 'any location' : context.storage.location}.`);
    if (failed.length > 0) {
      const first = failed[0]!;
      const single = reports.length === 1;
      throw new SynapseError(single ? first.failure!.code : 'E_VERIFY_FAILED', {
        message: single
          ? `backup '${first.backupName}' failed verification: ${first.failure!.message}`
          : `${failed.length} of ${reports.length} backups failed verification: ${failed.map((report) => `'${report.backupName}' (${report.failure!.message})`).join('; ')}`,
        details: {backups: reports},
      });
    }
    await this.notify('verify.succeeded', {
      ...(reports.length === 1 ? {backup: {name: reports[0]!.backupName, type: reports[0]!.backupType, storedBytes: reports[0]!.storedBytes, plaintextBytes: reports[0]!.plaintextBytes}} : {}),
      details: {verified: reports.map((report) => report.backupName), decodedAll: reports.every((report) => report.decoded)},
    });
    return {backups: reports, verified: reports.length, failed: 0};
  }
}
