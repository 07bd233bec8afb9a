import {Flags} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {openStorage} from '../../cli/runtime.js';
import {cleanupBackups, documentAuthenticatorFor, type CleanupResult, type RestoreLeftovers} from '../../core/services/index.js';

type CleanupOutput = CleanupResult & {databases: RestoreLeftovers | null};

export default class BackupCleanup extends SynapseCommand<CleanupOutput> {
  static override notifies = 'cleanup' as const;
  static override journals = 'cleanup' as const;
  static override summary = 'Delete backups beyond the retention policy (24 hourly, 30 daily, 12 monthly).';
  static override description = withEnvironmentHelp(
    'Keeps the newest BACKUP_RETENTION_HOURLY, _DAILY and _MONTHLY good backups of each database and type and deletes the rest, each with its metadata, plus what crashed runs left. A backup is deleted only once the newer backups that replace it have been read back whole and matched their checksums (once per backup; the result is remembered). Never deletes a file synapse-backup did not write, a backup whose metadata is missing, not authentic or damaged, or the newest good backup of a type.',
    COMMAND_ENVIRONMENT.cleanup,
  );

  static override examples = ['<%= config.bin %> <%= command.id %> --dry-run', 'BACKUP_RETENTION_HOURLY=48 <%= config.bin %> <%= command.id %>'];

  static override flags = {
    'dry-run': Flags.boolean({summary: 'Show what would be deleted and delete nothing.', default: false}),
    'all-databases': Flags.boolean({
      summary: "Apply the retention counts to every database's backups in the storage, not only to those of the database DATABASE_URL names.",
      default: false,
    }),
  };

  async run(): Promise<CleanupOutput> {
    const {flags} = await this.parse(BackupCleanup);
    const settings = this.loadSettings(['retention']);
    const storage = await openStorage(this.config, settings, 'read-write', {signal: this.signal, onWarning: (message) => this.warnUser(message)});
    this.journalIn(storage, settings);
    const result = await this.display(
      'cleanup',
      [
        {stage: 'plan', title: 'Apply retention policy'},
        {stage: 'verify', title: 'Verify the backups that replace older ones'},
        {stage: 'remove', title: 'Delete'},
      ],
      () =>
        cleanupBackups(
          {storage, policy: settings.retention, events: this.events, authenticator: documentAuthenticatorFor(settings.encryption), database: flags['all-databases'] ? undefined : settings.database.database},
          {dryRun: flags['dry-run']},
        ),
    );
    const verb = result.dryRun ? 'would remove' : 'removed';
    const width = verb.length;
    const lines = [
      ...result.decisions.map((decision) => `${(decision.action === 'keep' ? 'keep' : verb).padEnd(width)} ${decision.name}  (${decision.database ?? '?'}: ${decision.reason})`),
      ...result.leftovers.map((key) => `${verb.padEnd(width)} ${key}  (left by an interrupted run)`),
      ...result.abortedUploads.map((upload) => `${(result.dryRun ? 'would abort' : 'aborted').padEnd(width)} the unfinished upload of ${upload}  (left by an interrupted run)`),
    ];
    const removed = result.decisions.filter((decision) => decision.action === 'remove').length;
    const outcome = result.dryRun ? 'would be removed' : 'removed';
    if (flags['all-databases']) this.warnUser(`--all-databases: the retention counts of this configuration (hourly ${settings.retention.hourly}, daily ${settings.retention.daily}, monthly ${settings.retention.monthly}) apply to every database in '${storage.location}'`);
    this.print(`${lines.join('\n')}${lines.length > 0 ? '\n' : ''}${result.dryRun ? 'Dry run: ' : ''}${removed} backups and ${result.leftovers.length} leftovers ${outcome}; ${result.decisions.length - removed} backups kept.`);
    // Restores that died leave scratch databases on the server; the storage alone cannot tell.
    const databases = await this.showRestoreLeftovers(settings, {reclaim: !result.dryRun});
    await this.notify('cleanup.completed', {
      details: {
        dryRun: result.dryRun,
        removed: result.decisions.filter((decision) => decision.action === 'remove').map((decision) => decision.name),
        kept: result.decisions.length - removed,
        leftoversRemoved: result.leftovers,
      },
    });
    return {...result, databases};
  }
}
