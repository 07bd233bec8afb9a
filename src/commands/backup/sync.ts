import {Flags} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {formatBytes} from '../../cli/format/index.js';
import {openEveryLocation} from '../../cli/runtime.js';
import {SynapseError} from '../../core/errors/index.js';
import {syncLocations, type SyncResult} from '../../core/replication/index.js';
import {documentAuthenticatorFor} from '../../core/services/index.js';
import {syncWalArea, type WalAreaSync} from '../../core/wal/index.js';
import {walCodecFor} from '../../cli/wal/wal-context.js';

interface SyncOutput extends SyncResult {
  /** The WAL archive (wal/) of each location: the archived files it lacked, copied from another. */
  readonly wal: readonly WalAreaSync[];
}

export default class BackupSync extends SynapseCommand<SyncOutput> {
  static override notifies = 'sync' as const;
  static override journals = 'sync' as const;
  static override summary = 'Copy to each location (BACKUP_LOCATIONS) the backups it lacks, from one that holds them good.';
  static override description = withEnvironmentHelp(
    'For every backup that one location holds good (complete, of the recorded size, its metadata authentic) and another lacks, copies the same encrypted bytes and the same metadata there, checking the SHA-256 of what arrives before the metadata is written. A copy a location holds already that differs (a damaged or planted one) is never overwritten: it is reported, and one that fails its checksum is replaced only with --repair. A killed sync leaves nothing that looks good; the next cleanup of that location removes what it left. The archived WAL files (wal/) a location lacks are copied the same way, each MAC checked where it is and where it arrives; one that is not authentic, or that the location holds with other content, is named and left.',
    COMMAND_ENVIRONMENT.sync,
  );

  static override examples = ['<%= config.bin %> <%= command.id %> --dry-run', '<%= config.bin %> <%= command.id %> --location offsite --json'];

  static override flags = {
    'dry-run': Flags.boolean({summary: 'Show what would be copied and copy nothing.', default: false}),
    location: Flags.string({summary: 'Copy only to this location (its name in BACKUP_LOCATIONS); every location may be copied from.'}),
    repair: Flags.boolean({
      summary: 'Read every copy the locations written to hold and check its SHA-256 (a copy damaged in its own size looks good until read); replace one that fails with a good copy from another location.',
      default: false,
    }),
  };

  async run(): Promise<SyncOutput> {
    const {flags} = await this.parse(BackupSync);
    const settings = this.loadSettings([]);
    if (settings.locations.length < 2) {
      throw new SynapseError('E_CONFIG', {
        message: 'backup sync copies between locations, and only one is configured',
        suggestion: 'Set BACKUP_LOCATIONS to the locations, the primary first: `local:/var/backups/pg,offsite=s3://bucket/pg`.',
      });
    }
    // A location new to BACKUP_LOCATIONS is created, as `backup run` creates its storage the first time.
    const {opened, failed} = await openEveryLocation(this.config, settings, flags['dry-run'] ? 'read' : 'read-write', {create: !flags['dry-run'], signal: this.signal, onWarning: (message) => this.warnUser(message)});
    this.journalIn(opened[0]!.storage, settings);
    const result = await this.display('sync', [{stage: 'sync', title: 'Copy what each location lacks'}], async () => {
      this.events.stage('sync', 'started');
      const synced = await syncLocations(
        {locations: opened, authenticator: documentAuthenticatorFor(settings.encryption), signal: this.signal, onWarning: (message) => this.warnUser(message)},
        {dryRun: flags['dry-run'], repair: flags.repair, ...(flags.location === undefined ? {} : {location: flags.location})},
      );
      const unopened = failed
        .filter((failure) => flags.location === undefined || failure.location === flags.location)
        .map((failure) => ({location: failure.location, copied: [], conflicts: [], present: 0, failures: [`unable to open the location: ${failure.error.message}`]}));
      // The WAL archive too: the archived files a location lacks, each checked where it is and where it arrives.
      const wal = await syncWalArea(opened, await walCodecFor(this.config, settings), {dryRun: flags['dry-run'], ...(flags.location === undefined ? {} : {location: flags.location}), signal: this.signal});
      this.events.stage('sync', 'finished');
      return {...synced, locations: [...synced.locations, ...unopened], wal};
    });
    const verb = result.dryRun ? 'would copy' : 'copied';
    const lines: string[] = [];
    for (const location of result.locations) {
      for (const copy of location.copied) lines.push(`${location.location}: ${copy.outcome === 'repaired' ? (result.dryRun ? 'would replace' : 'replaced') : verb} ${copy.backup} from ${copy.from}${copy.bytes === undefined ? '' : ` (${formatBytes(copy.bytes)})`}`);
      for (const conflict of location.conflicts) lines.push(`${location.location}: left ${conflict.backup}: ${conflict.reason}`);
      for (const failure of location.failures) lines.push(`${location.location}: failed: ${failure}`);
      lines.push(`${location.location}: ${location.copied.length} ${verb}, ${location.present} already there, ${location.conflicts.length} left as they are, ${location.failures.length} failed`);
    }
    for (const area of result.wal) {
      if (area.copied.length === 0 && area.refused.length === 0 && area.failures.length === 0) continue;
      for (const refusal of area.refused) lines.push(`${area.location}: WAL: left ${refusal.key}: ${refusal.reason}`);
      for (const failure of area.failures) lines.push(`${area.location}: WAL: failed: ${failure}`);
      lines.push(`${area.location}: WAL: ${area.copied.length} archived files ${verb}, ${area.present} already there, ${area.refused.length} left as they are`);
    }
    this.print(`${result.dryRun ? 'Dry run: ' : ''}${lines.join('\n')}`);
    const walShort = result.wal.filter((area) => area.failures.length > 0 || area.refused.length > 0);
    const failures = result.locations.filter((location) => location.failures.length > 0 || location.conflicts.length > 0);
    if (walShort.length > 0 && failures.length === 0) {
      throw new SynapseError('E_REPLICATION', {
        message: `backup sync left WAL archives short: ${walShort.map((area) => `'${area.location}' (${[...area.failures, ...area.refused.map((refusal) => `${refusal.key}: ${refusal.reason}`)].join('; ')})`).join(', ')}`,
        suggestion: 'Every good archived file was copied. A file that is not authentic was not: check who can write to that location before you remove it; a file held with other content means two clusters, or a promotion without a new timeline, archived there.',
        details: {locations: result.locations, wal: result.wal},
      });
    }
    if (failures.length > 0) {
      throw new SynapseError('E_REPLICATION', {
        message: `backup sync left locations short: ${failures.map((location) => `'${location.location}' (${[...location.failures, ...location.conflicts.map((conflict) => `${conflict.backup}: ${conflict.reason}`)].join('; ')})`).join(', ')}`,
        details: {locations: result.locations, wal: result.wal},
      });
    }
    await this.notify('sync.completed', {details: {dryRun: result.dryRun, locations: result.locations.map((location) => ({location: location.location, copied: location.copied.map((copy) => copy.backup), present: location.present}))}});
    return result;
  }
}
