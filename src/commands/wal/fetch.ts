import {Args} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {openEveryLocation} from '../../cli/runtime.js';
import {walArchiveContext} from '../../cli/wal/wal-context.js';
import type {SynapseError} from '../../core/errors/index.js';
import {fetchWalFile, type FetchResult} from '../../core/wal/index.js';

export default class WalFetch extends SynapseCommand<FetchResult> {
  static override summary = "Restore one archived WAL file for recovery: PostgreSQL's restore_command.";
  static override description = withEnvironmentHelp(
    "Finds the file in the WAL area of the first location that holds a good copy (the next one when a location cannot be read), decrypts and decompresses it beside the destination, checks its MAC and renames it into place only then. A file that no location holds exits 16 without a message: PostgreSQL asks for files that do not exist as a matter of course. A copy that is damaged (exit 13) or not authentic (exit 14) fails loudly, naming it; a .partial file is never handed out for the segment of its name.",
    COMMAND_ENVIRONMENT.walFetch,
  );

  static override examples = [
    "restore_command = 'BACKUP_DIR=/var/backups/pg BACKUP_ENCRYPTION_KEY_FILE=/etc/synapse-backup/key /srv/synapse-backup/bin/synapse-backup wal fetch %f %p'",
  ];

  static override args = {
    file: Args.string({description: 'The WAL file to restore (%f).', required: true}),
    destination: Args.string({description: 'Where to write it (%p).', required: true}),
  };

  protected override isExpectedFailure(failure: SynapseError): boolean {
    return failure.code === 'E_WAL_NOT_FOUND';
  }

  async run(): Promise<FetchResult> {
    const {args} = await this.parse(WalFetch);
    const settings = this.loadSettings([]);
    const {opened} = await openEveryLocation(this.config, settings, 'read', {signal: this.signal, onWarning: (message) => this.warnUser(message)});
    const context = await walArchiveContext(this.config, settings, opened, this.signal, (message) => this.warnUser(message));
    const result = await fetchWalFile(context, {file: args.file, destination: args.destination});
    for (const skipped of result.skipped) this.warnUser(`location '${skipped.location}' did not give '${result.file}': ${skipped.reason}`);
    return result;
  }
}
