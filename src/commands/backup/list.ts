import {Flags} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {formatBackupTable} from '../../cli/format/index.js';
import {openEveryLocation, openStorage} from '../../cli/runtime.js';
import {documentAuthenticatorFor, listBackups, listLocatedBackups, type ListedBackup, type RestoreLeftovers} from '../../core/services/index.js';

interface ListOutput {
  readonly database: string | null;
  readonly backups: ListedBackup[];
  /** What earlier restores of the configured database left on the server; null when the server could not be asked. */
  readonly restoreLeftovers: RestoreLeftovers | null;
}

export default class BackupList extends SynapseCommand<ListOutput> {
  static override summary = 'List the backups of the configured database, newest first.';
  static override description = withEnvironmentHelp(
    'Shows the backups of the database DATABASE_URL names (with --all-databases, of every database in the storage). A backup counts as good only when its stored file has the recorded size and its metadata is complete and, with a key configured, authentic; the others are listed and marked. Files that synapse-backup did not write and runs that have not finished are not listed.',
    COMMAND_ENVIRONMENT.list,
  );

  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --all-databases --json'];

  static override flags = {
    'all-databases': Flags.boolean({summary: 'List the backups of every database in the storage.', default: false}),
  };

  async run(): Promise<ListOutput> {
    const {flags} = await this.parse(BackupList);
    const settings = this.loadSettings([]);
    const database = flags['all-databases'] ? undefined : settings.database.database;
    const authenticator = documentAuthenticatorFor(settings.encryption);
    const storageOptions = {signal: this.signal, onWarning: (message: string) => this.warnUser(message)};
    let backups: ListedBackup[];
    if (settings.locations.length > 1) {
      const {opened} = await openEveryLocation(this.config, settings, 'read', storageOptions);
      backups = await listLocatedBackups(opened, {authenticator, database, onWarning: (message) => this.warnUser(message)});
      // A location that could not be opened may hold any of them: it says unreadable, not missing.
      backups = backups.map((backup) => ({...backup, locations: settings.locations.map((spec) => backup.locations!.find((copy) => copy.location === spec.name) ?? {location: spec.name, state: 'unreadable' as const, problem: 'the location could not be opened'})}));
    } else {
      backups = await listBackups(await openStorage(this.config, settings, 'read', storageOptions), {authenticator, database});
    }
    this.print(formatBackupTable(backups, database === undefined ? 'Available backups of every database:' : `Available backups of database '${database}':`, {showDatabase: database === undefined}));
    const restoreLeftovers = await this.showRestoreLeftovers(settings, {reclaim: false, separate: true});
    return {database: database ?? null, backups, restoreLeftovers};
  }
}
