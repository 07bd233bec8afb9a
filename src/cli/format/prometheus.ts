import type {ReplicatedStatusReport} from '../../core/services/index.js';
import {exitStatusOf, type StatusReport} from '../../core/status/index.js';

type Labels = Readonly<Record<string, string>>;

/** A label value as the text exposition format wants it: backslash, double quote and newline escaped. */
function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function sample(name: string, labels: Labels, value: number): string {
  const rendered = Object.entries(labels).map(([key, label]) => `${key}="${escapeLabel(label)}"`).join(',');
  return `${name}${rendered ? `{${rendered}}` : ''} ${Number.isFinite(value) ? value : 'NaN'}`;
}

/**
 * The status in Prometheus' text exposition format (version 0.0.4), for node_exporter's textfile
 * collector or a scrape: every metric named synapse_backup_*, with HELP and TYPE.
 */
export function formatPrometheus(report: StatusReport): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: ReadonlyArray<[Labels, number]>): void => {
    if (samples.length === 0) return;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples.map(([labels, value]) => sample(name, labels, value)));
  };
  const withNewest = report.types.filter((type) => type.newest);
  const labels = (type: (typeof report.types)[number]): Labels => ({database: type.database, type: type.type});
  metric('synapse_backup_last_success_timestamp_seconds', 'gauge', 'When the newest good backup of this type completed, in seconds since the epoch.', withNewest.map((type) => [labels(type), type.newest!.completedAt.getTime() / 1000]));
  metric('synapse_backup_age_seconds', 'gauge', 'Age of the newest good backup of this type.', withNewest.map((type) => [labels(type), type.ageMs! / 1000]));
  metric('synapse_backup_max_age_seconds', 'gauge', 'Age beyond which a backup of this type is overdue.', report.types.map((type) => [labels(type), type.maxAgeMs / 1000]));
  metric('synapse_backup_overdue', 'gauge', '1 when the newest good backup of this type is missing or older than its maximum age.', report.types.map((type) => [labels(type), type.overdue ? 1 : 0]));
  metric('synapse_backup_size_bytes', 'gauge', 'Stored size of the newest good backup of this type.', withNewest.map((type) => [labels(type), type.newest!.storedBytes]));
  metric('synapse_backup_duration_seconds', 'gauge', 'How long the newest good backup of this type took.', withNewest.map((type) => [labels(type), type.newest!.durationMs / 1000]));
  if (report.storage.freeRatio !== undefined) {
    metric('synapse_backup_storage_free_ratio', 'gauge', 'Share of the backup location that is free (0 to 1).', [[{}, report.storage.freeRatio]]);
    metric('synapse_backup_storage_free_bytes', 'gauge', 'Bytes free at the backup location.', [[{}, report.storage.freeBytes!]]);
  }
  metric('synapse_backup_failures_total', 'counter', 'Failed runs recorded in the run journal, per operation.', Object.entries(report.failureCounts).map(([operation, count]) => [{operation}, count]));
  const restoreTest = report.lastSuccess.restoreTest;
  if (restoreTest) metric('synapse_backup_last_restore_test_success_timestamp_seconds', 'gauge', 'When the last successful restore test finished.', [[{}, Date.parse(restoreTest.finishedAt) / 1000]]);
  const byMethod = Object.entries(report.restoreTests).filter((entry): entry is [string, NonNullable<(typeof entry)[1]>] => entry[1] !== undefined);
  if (byMethod.length > 0) metric('synapse_backup_restore_test_success_timestamp_seconds', 'gauge', 'When the last successful restore test of each method finished (physical: a recovery drill).', byMethod.map(([method, fact]) => [{method}, Date.parse(fact.finishedAt) / 1000]));
  const verify = report.lastSuccess.verify;
  if (verify) metric('synapse_backup_last_verify_success_timestamp_seconds', 'gauge', 'When the last successful verify finished.', [[{}, Date.parse(verify.finishedAt) / 1000]]);
  const {locations} = report as Partial<ReplicatedStatusReport>;
  if (locations) {
    metric('synapse_backup_location_up', 'gauge', '1 when status could read this location.', locations.map((location) => [{location: location.name}, location.readable ? 1 : 0]));
    metric(
      'synapse_backup_location_behind_backups',
      'gauge',
      'Backups of this database and type, newer than the newest this location holds good, that another location holds and this one lacks.',
      locations.flatMap((location) => location.types.map((type): [Labels, number] => [{location: location.name, database: type.database, type: type.type}, type.behind])),
    );
    metric('synapse_backup_location_missing_backups', 'gauge', 'Good backups some location holds that this location lacks.', locations.filter((location) => location.readable).map((location) => [{location: location.name}, location.missing]));
    const walMissing = locations.flatMap((location): Array<[Labels, number]> => (location.wal?.missing === undefined ? [] : [[{location: location.name}, location.wal.missing]]));
    if (walMissing.length > 0) metric('synapse_backup_location_wal_missing_files', 'gauge', 'Archived WAL files some location holds that this location lacks.', walMissing);
  }
  const {archive} = report;
  if (archive) {
    if (archive.newest) {
      metric('synapse_backup_wal_last_archived_timestamp_seconds', 'gauge', 'When the storage took the newest authentic archived WAL segment, in seconds since the epoch.', [[{}, Date.parse(archive.newest.archivedAt) / 1000]]);
      metric('synapse_backup_wal_archive_age_seconds', 'gauge', 'Age of the newest authentic archived WAL segment: at most the data at risk.', [[{}, archive.newest.ageMs / 1000]]);
    }
    metric('synapse_backup_wal_archived_files', 'gauge', 'Files in the WAL archive of the primary location.', [[{}, archive.files]]);
    if (!('unavailable' in archive.server)) {
      metric('synapse_backup_wal_pending_segments', 'gauge', 'Finished WAL segments the server has not archived yet (from pg_stat_archiver).', [[{}, archive.server.pendingSegments]]);
      if (archive.server.readyFiles !== undefined) metric('synapse_backup_wal_ready_files', 'gauge', 'Files waiting for the archiver in the data directory (pg_wal/archive_status/*.ready), where status runs on the server host.', [[{}, archive.server.readyFiles]]);
      metric('synapse_backup_wal_archive_failures_total', 'counter', "Failed archive_command runs since the server's statistics were reset.", [[{}, archive.server.failedCount]]);
    }
  }
  metric('synapse_backup_status', 'gauge', 'Overall verdict in the Nagios convention: 0 ok, 1 warning, 2 critical, 3 unknown.', [[{}, exitStatusOf(report.level)]]);
  return `${lines.join('\n')}\n`;
}
