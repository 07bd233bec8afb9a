import {SynapseCommand} from '../../cli/base-command.js';
import {formatBackupTable} from '../../cli/format/index.js';
import {loadSettings, openStorage} from '../../cli/runtime.js';
import {listBackups, type ListedBackup} from '../../core/services/index.js';

export default class BackupList extends SynapseCommand<{backups: ListedBackup[]}> {
  static override summary = 'List the backups in the backup storage, newest first.';
  static override description = 'Backups whose metadata is missing or unreadable are listed and marked; they are not good backups. Files that synapse-backup did not write are not listed.';
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json'];

  async run(): Promise<{backups: ListedBackup[]}> {
    await this.parse(BackupList);
    const settings = loadSettings();
    const storage = await openStorage(this.config, settings, 'read');
    const backups = await listBackups(storage);
    this.print(formatBackupTable(backups));
    return {backups};
  }
}
