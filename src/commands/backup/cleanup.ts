import {Flags} from '@oclif/core';

import {SynapseCommand} from '../../cli/base-command.js';
import {COMMAND_ENVIRONMENT, withEnvironmentHelp} from '../../cli/environment-help.js';
import {openEveryLocation} from '../../cli/runtime.js';
import type {Settings} from '../../core/config/index.js';
import {keepAsOnlyGoodCopy, locateBackups, readLocationCatalogs, type Location} from '../../core/replication/index.js';
import {cleanupBackups, documentAuthenticatorFor, reclaimDeadDrills, type CleanupResult, type RestoreLeftovers} from '../../core/services/index.js';

/** With several locations, `locations` has each location's own result; the rest adds them up, keys prefixed with the location. */
type CleanupOutput = CleanupResult & {databases: RestoreLeftovers | null; locations?: ReadonlyArray<CleanupResult & {location: string}>};

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
    // What a killed drill left on this host (its scratch directory, its server) goes first: cleanup runs hourly, drills weekly.
    if (!flags['dry-run']) await reclaimDeadDrills(settings.physical.drillDirectory, (message) => this.warnUser(message));
    const {opened} = await openEveryLocation(this.config, settings, 'read-write', {signal: this.signal, onWarning: (message) => this.warnUser(message)});
    this.journalIn(opened[0]!.storage, settings);
    const authenticator = documentAuthenticatorFor(settings.encryption);
    const database = flags['all-databases'] ? undefined : settings.database.database;
    const stages = [
      {stage: 'plan' as const, title: 'Apply retention policy'},
      {stage: 'verify' as const, title: 'Verify the backups that replace older ones'},
      {stage: 'remove' as const, title: 'Delete'},
    ];
    const clean = (location: Location, keepAnyway?: (name: string) => string | undefined) =>
      cleanupBackups({storage: location.storage, policy: settings.locationRetention[location.name] ?? settings.retention, events: this.events, authenticator, database, ...(keepAnyway ? {keepAnyway} : {})}, {dryRun: flags['dry-run']});
    if (opened.length === 1) {
      const result = await this.display('cleanup', stages, () => clean(opened[0]!));
      return this.report(result, settings, flags, opened[0]!.storage.location);
    }
    // Each location by its own policy; none removes the only good copy of a backup another location still wants.
    const catalogs = await readLocationCatalogs(opened, authenticator);
    const located = new Map(locateBackups(catalogs).map((backup) => [backup.name, backup]));
    const holdings = settings.locations.map((spec) => {
      const catalog = catalogs.find((candidate) => candidate.location === spec.name);
      return {location: spec.name, entries: catalog && 'catalog' in catalog ? catalog.catalog.backups : undefined, policy: settings.locationRetention[spec.name] ?? settings.retention};
    });
    const results: Array<CleanupResult & {location: string}> = [];
    for (const location of opened) {
      const keepAnyway = (name: string): string | undefined => {
        const backup = located.get(name);
        return backup ? keepAsOnlyGoodCopy(backup, location.name, holdings) : undefined;
      };
      const result = await this.display('cleanup', stages.map((stage) => ({...stage, title: `${stage.title} (location ${location.name})`})), () => clean(location, keepAnyway));
      results.push({...result, location: location.name});
    }
    const [first] = results;
    const merged: CleanupResult = {
      dryRun: first!.dryRun,
      policy: first!.policy,
      decisions: results.flatMap((result) => result.decisions.map((decision) => ({...decision, location: result.location}))),
      verified: results.flatMap((result) => result.verified),
      leftovers: results.flatMap((result) => result.leftovers.map((key) => `${result.location}:${key}`)),
      removedKeys: results.flatMap((result) => result.removedKeys.map((key) => `${result.location}:${key}`)),
      abortedUploads: results.flatMap((result) => result.abortedUploads.map((upload) => `${result.location}:${upload}`)),
      wal: {
        removedKeys: results.flatMap((result) => result.wal.removedKeys.map((key) => `${result.location}:${key}`)),
        keptFrom: first!.wal.keptFrom,
        reason: results.map((result) => `${result.location}: ${result.wal.reason}`).join('; '),
      },
    };
    return this.report({...merged, locations: results}, settings, flags, opened.map((location) => location.name).join(', '));
  }

  private async report(result: CleanupResult & {locations?: ReadonlyArray<CleanupResult & {location: string}>}, settings: Settings, flags: {'dry-run': boolean; 'all-databases': boolean}, where: string): Promise<CleanupOutput> {
    const verb = result.dryRun ? 'would remove' : 'removed';
    const width = verb.length;
    const lines = [
      ...result.decisions.map((decision) => `${(decision.action === 'keep' ? 'keep' : verb).padEnd(width)} ${decision.name}${'location' in decision ? ` at ${String(decision.location)}` : ''}  (${decision.database ?? '?'}: ${decision.reason})`),
      ...result.leftovers.map((key) => `${verb.padEnd(width)} ${key}  (left by an interrupted run)`),
      ...result.abortedUploads.map((upload) => `${(result.dryRun ? 'would abort' : 'aborted').padEnd(width)} the unfinished upload of ${upload}  (left by an interrupted run)`),
    ];
    const removed = result.decisions.filter((decision) => decision.action === 'remove').length;
    const outcome = result.dryRun ? 'would be removed' : 'removed';
    if (flags['all-databases']) this.warnUser(`--all-databases: the retention counts of this configuration (hourly ${settings.retention.hourly}, daily ${settings.retention.daily}, monthly ${settings.retention.monthly}) apply to every database in '${where}'`);
    const walLine = result.wal.removedKeys.length > 0 || result.wal.keptFrom !== null ? `\nWAL archive: ${result.wal.removedKeys.length} archived files ${outcome} (${result.wal.reason}).` : '';
    this.print(`${lines.join('\n')}${lines.length > 0 ? '\n' : ''}${result.dryRun ? 'Dry run: ' : ''}${removed} backups and ${result.leftovers.length} leftovers ${outcome}; ${result.decisions.length - removed} backups kept.${walLine}`);
    // Restores that died leave scratch databases on the server; the storage alone cannot tell.
    const databases = await this.showRestoreLeftovers(settings, {reclaim: !result.dryRun});
    await this.notify('cleanup.completed', {
      details: {
        dryRun: result.dryRun,
        removed: result.decisions.filter((decision) => decision.action === 'remove').map((decision) => decision.name),
        kept: result.decisions.length - removed,
        leftoversRemoved: result.leftovers,
        walFilesRemoved: result.wal.removedKeys.length,
      },
    });
    return {...result, databases};
  }
}
