import {Flags} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {loadSettings, openStorage} from '../../cli/runtime.js';
import {cleanupBackups, type CleanupResult} from '../../core/services/index.js';

export default class BackupCleanup extends SynapseCommand<CleanupResult> {
  static override summary = 'Delete backups beyond the retention policy (24 hourly, 30 daily, 12 monthly).';
  static override description =
    'Keeps the newest BACKUP_RETENTION_HOURLY, _DAILY and _MONTHLY good backups of each type and deletes the rest, each with its metadata, plus temporary files left by crashed runs. Never deletes a file synapse-backup did not write, a backup whose metadata is missing, or the newest good backup of a type.';

  static override examples = ['<%= config.bin %> <%= command.id %> --dry-run', 'BACKUP_RETENTION_HOURLY=48 <%= config.bin %> <%= command.id %>'];

  static override flags = {
    'dry-run': Flags.boolean({summary: 'Show what would be deleted and delete nothing.', default: false}),
  };

  async run(): Promise<CleanupResult> {
    const {flags} = await this.parse(BackupCleanup);
    const settings = loadSettings();
    const storage = await openStorage(this.config, settings, 'read-write');
    const result = await this.display(
      'cleanup',
      [
        {stage: 'plan', title: 'Apply retention policy'},
        {stage: 'remove', title: 'Delete'},
      ],
      () => cleanupBackups({storage, policy: settings.retention, events: this.events}, {dryRun: flags['dry-run']}),
    );
    const verb = result.dryRun ? 'would remove' : 'removed';
    const lines = [
      ...result.decisions.map((decision) => `${decision.action === 'keep' ? 'keep  ' : verb.padEnd(6)} ${decision.name}  (${decision.reason})`),
      ...result.leftovers.map((key) => `${verb.padEnd(6)} ${key}  (temporary file left by an interrupted run)`),
    ];
    const removed = result.decisions.filter((decision) => decision.action === 'remove').length;
    const outcome = result.dryRun ? 'would be removed' : 'removed';
    this.print(`${lines.join('\n')}${lines.length > 0 ? '\n' : ''}${result.dryRun ? 'Dry run: ' : ''}${removed} backups and ${result.leftovers.length} leftovers ${outcome}; ${result.decisions.length - removed} backups kept.`);
    return result;
  }
}
