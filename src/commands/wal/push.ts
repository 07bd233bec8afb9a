import {Args, Flags} from '@oclif/core';
import path from 'node:path';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {readDotenvFile} from '../../cli/runtime.js';
import {releaseArchiver} from '../../cli/wal/archiver-channel.js';
import {walPushContext} from '../../cli/wal/wal-context.js';
import {dataDirectoryOf, pushAhead, readSystemIdentifier, type PushResult} from '../../core/wal/index.js';

interface WalPushOutput extends PushResult {
  /** The files archived ahead of PostgreSQL's asking, acknowledged in the spool. */
  readonly pushedAhead: readonly string[];
}

export default class WalPush extends SynapseCommand<WalPushOutput> {
  static override summary = "Archive one WAL file into every location: PostgreSQL's archive_command.";
  static override description = withEnvironmentHelp(
    "Compresses, encrypts and authenticates the file (a MAC over its name and content, so that a planted file is never replayed) and stores it in the WAL area of every location (BACKUP_LOCATIONS). Exits 0 only once every location holds it durably: PostgreSQL recycles the segment after that. With WAL_ARCHIVE_ACKNOWLEDGE=primary it exits 0 once the primary location (the first) holds it: the others are written in the same push, and one that cannot take it is a warning (in the server log), reported by `status` as behind and caught up by `backup sync`. A file archived already with the same content succeeds at once; one archived with other content fails with exit status 17 and is never replaced (two clusters archiving to one place, a promotion without a new timeline). The first push claims each location's archive for this cluster's system identifier (read from the data directory's global/pg_control); another cluster's push there is refused.\n\nTo keep up with a busy server, a push also archives up to WAL_PUSH_AHEAD further files that wait for the archiver (pg_wal/archive_status/*.ready), WAL_PUSH_PARALLEL at a time, and acknowledges each in the spool (pg_wal/synapse-backup-spool, or WAL_SPOOL_DIR) once every location holds it (the primary, with WAL_ARCHIVE_ACKNOWLEDGE=primary); the archiver's call for such a file then returns at once. Nothing is acknowledged before it is durable everywhere, and an acknowledgement holds only for the same file at the same locations. Through the launcher (bin/synapse-backup) with the file as its only argument, as archive_command runs it, the push answers once that file is durable and goes on with the others in the background, marking each pending in the spool; the archiver's call for a file a running push has in hand waits for its acknowledgement. Prints nothing on success.",
    COMMAND_ENVIRONMENT.walPush,
  );

  static override examples = ["archive_command = 'set -a && . /etc/synapse-backup/env && exec /srv/synapse-backup/bin/synapse-backup wal push %p'"];

  static override args = {
    path: Args.string({description: 'The WAL file to archive (%p), relative to the data directory.', required: true}),
  };

  static override flags = {
    'pg-data': Flags.string({summary: "The cluster's data directory, where it is not the one the file is in (default: the file's pg_wal's parent, else PGDATA)."}),
  };

  async run(): Promise<WalPushOutput> {
    const {args, flags} = await this.parse(WalPush);
    const settings = this.loadSettings(['new-backups', 'wal-archive']);
    const systemIdentifier = await readSystemIdentifier(dataDirectoryOf(args.path, flags['pg-data'], process.env));
    const context = walPushContext(this.config, settings, this.signal, (message) => this.warnUser(message));
    try {
      const {requested, ahead} = await pushAhead(context, {path: args.path, systemIdentifier}, {
        ...settings.walArchive,
        env: {process: process.env, dotenv: readDotenvFile(process.cwd())},
        pgWal: path.dirname(path.resolve(args.path)),
        onRequestedArchived: () => releaseArchiver(0),
      });
      return {...requested, pushedAhead: ahead};
    } finally {
      context.close();
    }
  }
}
