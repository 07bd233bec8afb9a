import {Flags} from '@oclif/core';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {formatBytes, formatDuration} from '../../cli/format/index.js';
import {loadEncryptionProviders, openStorage} from '../../cli/runtime.js';
import {isSynapseError} from '../../core/errors/index.js';
import {BACKUP_TYPES, type BackupType} from '../../core/naming/index.js';
import {runVerifiedBackup, type VerifiedBackupResult} from '../../core/services/index.js';

type RunOutput = VerifiedBackupResult;

export default class BackupRun extends SynapseCommand<RunOutput> {
  static override notifies = 'backup' as const;
  static override journals = 'backup' as const;
  static override summary = 'Back up the database: pg_dump, gzip, encrypt, checksum, store.';
  static override description = withEnvironmentHelp(
    `Streams a plain pg_dump through gzip or zstd and (when a key is configured) AES-256-CBC into the backup storage, then writes <name>.meta.json beside it, with a MAC when a key is configured. Nothing is written to a temporary copy; a failed or interrupted run leaves nothing that counts as a backup, the next cleanup removes what it left, and earlier backups are never touched. Only one run per backup storage at a time: a second one exits with status 11.`,
    COMMAND_ENVIRONMENT.run,
  );

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --backup-type daily',
    'BACKUP_DIR=/var/backups/pg <%= config.bin %> <%= command.id %> --backup-type monthly --json',
  ];

  static override flags = {
    'backup-type': Flags.string({
      char: 't',
      summary: 'Which retention class the backup belongs to.',
      options: [...BACKUP_TYPES],
      default: 'hourly',
    }),
    verify: Flags.boolean({summary: 'Read the new backup back from the storage and verify it to the end (as `backup verify` does) before reporting success.', default: false}),
  };

  async run(): Promise<RunOutput> {
    const {flags} = await this.parse(BackupRun);
    this.eventFacts.backup = {type: flags['backup-type']};
    // A dead man's switch (the heartbeat sink) learns that a run began before anything can fail.
    await this.notify('backup.started');
    const settings = this.loadSettings(['new-backups']);
    const storage = await openStorage(this.config, settings, 'read-write', {create: true, signal: this.signal, onWarning: (message) => this.warnUser(message)});
    this.journalIn(storage, settings);
    let encryption: EncryptionProvider | undefined;
    if (settings.encryption) {
      // runVerifiedBackup refuses a configured cipher that no plugin provides.
      encryption = (await loadEncryptionProviders(this.config)).get(settings.encryption.provider);
    }
    const result = await this.display(
      'backup',
      [
        {stage: 'preflight', title: 'Check server, pg_dump and lock'},
        {stage: 'dump', title: 'Dump (pg_dump)'},
        {stage: 'compress', title: `Compress (${settings.compression.algorithm} ${settings.compression.level})`},
        {stage: 'encrypt', title: `Encrypt (${encryption?.id ?? 'no key'})`},
        {stage: 'checksum', title: 'Checksum (SHA-256)'},
        {stage: 'store', title: `Store (${storage.scheme})`},
        {stage: 'metadata', title: 'Metadata'},
        ...(flags.verify ? [{stage: 'verify' as const, title: 'Read back and verify'}] : []),
      ],
      async () => {
        try {
          const backup = await runVerifiedBackup(
            {settings, storage, encryption, events: this.events, signal: this.signal, toolVersion: this.config.version},
            {type: flags['backup-type'] as BackupType, verify: flags.verify},
          );
          this.eventFacts.backup = {...this.eventFacts.backup, name: backup.name};
          return backup;
        } catch (error) {
          // A backup written whose read-back failed: its failure event names it.
          const written = isSynapseError(error) ? error.details.backupName : undefined;
          if (typeof written === 'string') this.eventFacts.backup = {...this.eventFacts.backup, name: written};
          throw error;
        }
      },
    );
    const {metadata} = result;
    this.print(
      `Backup ${result.name} written to ${result.location}: ${formatBytes(metadata.sizes.storedBytes)} stored (${formatBytes(metadata.sizes.plaintextBytes)} of SQL) in ${formatDuration(metadata.durationMs)}, sha256 ${metadata.checksums.stored}${result.verification ? '; read back and verified to the end' : ''}`,
    );
    await this.notify('backup.succeeded', {
      backup: {
        name: result.name,
        type: metadata.backupType,
        storedBytes: metadata.sizes.storedBytes,
        plaintextBytes: metadata.sizes.plaintextBytes,
        sha256: metadata.checksums.stored,
        compression: metadata.compression.algorithm,
        encrypted: metadata.encryption !== null,
      },
      durationMs: metadata.durationMs,
      storage: {scheme: storage.scheme, location: result.location},
    });
    return result;
  }
}
