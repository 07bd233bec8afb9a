import {Flags} from '@oclif/core';

import type {EncryptionProvider} from '../../contracts/encryption.js';
import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {formatBytes, formatDuration} from '../../cli/format/index.js';
import {loadEncryptionProviders, openEveryLocation} from '../../cli/runtime.js';
import {SynapseError, isSynapseError} from '../../core/errors/index.js';
import {failedOutcome, replicateBackup, replicationFailure, type Location, type LocationOutcome} from '../../core/replication/index.js';
import {BACKUP_METHODS, BACKUP_TYPES, type BackupMethod, type BackupType} from '../../core/naming/index.js';
import {walCodecFor} from '../../cli/wal/wal-context.js';
import {documentAuthenticatorFor, runVerifiedBackup, type VerifiedBackupResult} from '../../core/services/index.js';

/** With several locations, where the backup went, location by location. */
type RunOutput = VerifiedBackupResult & {locations?: LocationOutcome[]};

export default class BackupRun extends SynapseCommand<RunOutput> {
  static override notifies = 'backup' as const;
  static override journals = 'backup' as const;
  static override summary = 'Back up the database (pg_dump) or the cluster (pg_basebackup): compress, encrypt, checksum, store.';
  static override description = withEnvironmentHelp(
    `With --method physical, streams pg_basebackup of the whole cluster instead (its WAL from the archive: the backup is published only once its last WAL file is archived). Streams a plain pg_dump through gzip or zstd and (when a key is configured) AES-256-CBC into the backup storage, then writes <name>.meta.json beside it, with a MAC when a key is configured. Nothing is written to a temporary copy; a failed or interrupted run leaves nothing that counts as a backup, the next cleanup removes what it left, and earlier backups are never touched. Only one run per backup storage at a time: a second one exits with status 11.`,
    COMMAND_ENVIRONMENT.run,
  );

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --backup-type daily',
    'BACKUP_DIR=/var/backups/pg <%= config.bin %> <%= command.id %> --backup-type monthly --json',
    '<%= config.bin %> <%= command.id %> --method physical --backup-type daily',
  ];

  static override flags = {
    'backup-type': Flags.string({
      char: 't',
      summary: 'Which retention class the backup belongs to.',
      options: [...BACKUP_TYPES],
      default: 'hourly',
    }),
    method: Flags.string({
      summary: 'logical: pg_dump of one database (the default); physical: pg_basebackup of the whole cluster, restored to any point in time with the WAL archive (needs archive_command = synapse-backup wal push %p).',
      options: [...BACKUP_METHODS],
      default: 'logical',
    }),
    verify: Flags.boolean({summary: 'Read the new backup back from the storage and verify it to the end (as `backup verify` does) before reporting success.', default: false}),
  };

  async run(): Promise<RunOutput> {
    const {flags} = await this.parse(BackupRun);
    const method = flags.method as BackupMethod;
    this.eventFacts.backup = {type: flags['backup-type']};
    // A dead man's switch (the heartbeat sink) learns that a run began before anything can fail.
    await this.notify('backup.started');
    const settings = this.loadSettings(method === 'physical' ? ['new-backups', 'wal-archive'] : ['new-backups']);
    const walCodec = method === 'physical' ? await walCodecFor(this.config, settings) : undefined;
    const storageOptions = {create: true, signal: this.signal, onWarning: (message: string) => this.warnUser(message)};
    const replicated = settings.locations.length > 1;
    const {opened, failed} = await openEveryLocation(this.config, settings, 'read-write', storageOptions);
    const writers: Location[] = [...opened];
    const failures: LocationOutcome[] = failed.map((failure) => failedOutcome(failure));
    let encryption: EncryptionProvider | undefined;
    if (settings.encryption) {
      // runVerifiedBackup refuses a configured cipher that no plugin provides.
      encryption = (await loadEncryptionProviders(this.config)).get(settings.encryption.provider);
    }
    let writer = writers.shift()!;
    this.journalIn(writer.storage, settings);
    const result = await this.display(
      'backup',
      [
        {stage: 'preflight', title: `Check server, ${method === 'logical' ? 'pg_dump' : 'pg_basebackup, WAL archiving'} and lock`},
        {stage: 'dump', title: method === 'logical' ? 'Dump (pg_dump)' : 'Base backup (pg_basebackup)'},
        {stage: 'compress', title: `Compress (${settings.compression.algorithm} ${settings.compression.level})`},
        {stage: 'encrypt', title: `Encrypt (${encryption?.id ?? 'no key'})`},
        {stage: 'checksum', title: 'Checksum (SHA-256)'},
        {stage: 'store', title: `Store (${writer.storage.scheme}${replicated ? `, location ${writer.name}` : ''})`},
        {stage: 'metadata', title: method === 'logical' ? 'Metadata' : 'Stop segment archived, metadata'},
        ...(flags.verify ? [{stage: 'verify' as const, title: 'Read back and verify'}] : []),
        ...(replicated ? [{stage: 'replicate' as const, title: 'Copy to the other locations'}] : []),
      ],
      async () => {
        for (;;) {
          try {
            const backup = await runVerifiedBackup(
              {settings, storage: writer.storage, encryption, events: this.events, signal: this.signal, toolVersion: this.config.version, walCodec},
              {type: flags['backup-type'] as BackupType, verify: flags.verify, method},
            );
            this.eventFacts.backup = {...this.eventFacts.backup, name: backup.name};
            return backup;
          } catch (error) {
            // A backup written whose read-back failed: its failure event names it.
            const written = isSynapseError(error) ? error.details.backupName : undefined;
            if (typeof written === 'string') this.eventFacts.backup = {...this.eventFacts.backup, name: written};
            // A location that failed as storage (full, gone, refused) costs the backup nothing while another is left: the dump runs again there.
            if (!replicated || writers.length === 0 || typeof written === 'string' || !isSynapseError(error) || error.exitCode !== 7) throw error;
            failures.push(failedOutcome({location: writer.name, error}));
            this.warnUser(`location '${writer.name}' failed (${error.message}); writing the backup to location '${writers[0]!.name}' instead`);
            writer = writers.shift()!;
            this.journalIn(writer.storage, settings);
          }
        }
      },
    );
    const {metadata} = result;
    let locations: LocationOutcome[] = [{location: writer.name, outcome: 'written'}];
    if (replicated) {
      this.events.stage('replicate', 'started');
      const copies = await replicateBackup(writer, writers, {name: result.name, sha256: metadata.checksums.stored}, {
        authenticator: documentAuthenticatorFor(settings.encryption),
        signal: this.signal,
        onWarning: (message) => this.warnUser(message),
      });
      locations = settings.locations.map((spec) => [...locations, ...copies, ...failures].find((outcome) => outcome.location === spec.name)!);
      const failedCopies = locations.filter((outcome) => outcome.outcome === 'failed').length;
      this.events.stage('replicate', failedCopies === 0 ? 'finished' : 'failed', {detail: `${locations.length - failedCopies} of ${locations.length} locations`});
    }
    this.print(
      `Backup ${result.name} written to ${result.location}: ${formatBytes(metadata.sizes.storedBytes)} stored (${formatBytes(metadata.sizes.plaintextBytes)} of ${metadata.physical ? "cluster files" : "SQL"}) in ${formatDuration(metadata.durationMs)}, sha256 ${metadata.checksums.stored}${result.verification ? '; read back and verified to the end' : ''}`,
    );
    if (replicated) this.print(locations.map((outcome) => `  ${outcome.location}: ${outcome.outcome}${outcome.error ? ` (${outcome.error.message})` : ''}`).join('\n'));
    const primary = locations[0]!;
    if (primary.outcome === 'failed') {
      // Kept where it succeeded, and still a failed run: the primary is where the next restore looks first.
      throw new SynapseError((primary.error?.code.startsWith('E_') ? primary.error.code : 'E_STORAGE') as 'E_STORAGE', {
        message: `the primary location failed (${primary.error?.message ?? 'unknown'}); backup '${result.name}' was kept at location '${writer.name}'`,
        suggestion: `Fix the primary location, then run \`synapse-backup backup sync\` to copy the backup there.`,
        details: {backupName: result.name, locations},
      });
    }
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
      storage: {scheme: writer.storage.scheme, location: result.location},
      ...(replicated ? {details: {locations}} : {}),
    });
    const replication = replicationFailure(result.name, locations);
    if (replication) throw replication;
    return replicated ? {...result, locations} : result;
  }
}
