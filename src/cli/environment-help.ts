/** The variables each command reads, for its --help: all configuration is environment (or .env). */
const CONNECTION = 'DATABASE_URL (or PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ~/.pgpass)';
const STORAGE = 'BACKUP_LOCATIONS (several locations, the primary first), or BACKUP_DIR and BACKUP_STORAGE; SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS, BACKUP_S3_* and AWS_* (S3)';
const KEY = 'BACKUP_ENCRYPTION_KEY or BACKUP_ENCRYPTION_KEY_FILE';
const NOTIFY = 'NOTIFY_* (the notification sinks, NOTIFY_<SINK>_EVENTS, NOTIFY_TIMEOUT; see `synapse-backup check`)';
const PLUGINS = 'SYNAPSE_BACKUP_DATA_DIR (where installed plugins are)';

export const COMMAND_ENVIRONMENT = {
  run: [CONNECTION, STORAGE, KEY, 'BACKUP_ENCRYPTION_ITERATIONS, BACKUP_ENCRYPTION_PROVIDER', 'BACKUP_COMPRESSION, BACKUP_COMPRESSION_LEVEL', 'BACKUP_FINGERPRINT', 'BACKUP_CHECKPOINT, BACKUP_WAL_WAIT_SECONDS (--method physical)', 'PG_BIN_DIR', 'SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS', NOTIFY, PLUGINS],
  list: [`${CONNECTION}: whose backups to show, and what earlier restores left`, STORAGE, `${KEY}: to check the metadata's MAC`, PLUGINS],
  restore: [CONNECTION, STORAGE, KEY, 'PG_BIN_DIR', 'SYNAPSE_BACKUP_LOCK_TIMEOUT_MS', 'SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS', NOTIFY, PLUGINS],
  cleanup: [`${CONNECTION}: for the databases earlier restores left`, STORAGE, `${KEY}: to check the metadata's MAC`, 'BACKUP_RETENTION_HOURLY, BACKUP_RETENTION_DAILY, BACKUP_RETENTION_MONTHLY', 'SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS', NOTIFY, PLUGINS],
  sync: [STORAGE, `${KEY}: to check the metadata's MAC`, 'SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS', NOTIFY, PLUGINS],
  check: [CONNECTION, STORAGE, KEY, 'PG_BIN_DIR', NOTIFY, PLUGINS],
  testRestore: [`${CONNECTION}: the server the scratch database is created on (the database itself is not touched); for a physical drill, the role to connect to the scratch server as`, STORAGE, `${KEY}: for a physical drill, from a file the server's user can read`, 'BACKUP_DRILL_DIR (a physical drill\'s scratch directory)', 'BACKUP_DRILL_TIMEOUT (how long a physical drill may take)', 'PG_BIN_DIR', NOTIFY, PLUGINS],
  status: [
    `${CONNECTION}: its database name, whose backups to report on; the server is asked about WAL archiving only where the storage holds a WAL archive`,
    STORAGE,
    `${KEY}: to authenticate the metadata and the run journal`,
    'BACKUP_ALERT_TYPES, BACKUP_ALERT_MAX_AGE_HOURLY, BACKUP_ALERT_MAX_AGE_DAILY, BACKUP_ALERT_MAX_AGE_MONTHLY, BACKUP_ALERT_MIN_FREE_PERCENT, BACKUP_ALERT_MIN_SIZE_RATIO, BACKUP_ALERT_WAL_AGE_WARNING, BACKUP_ALERT_WAL_AGE_CRITICAL, BACKUP_ALERT_RESTORE_TEST_AGE',
    `${NOTIFY}, NOTIFY_REPEAT_INTERVAL, SYNAPSE_BACKUP_STATE_DIR (where --notify keeps what it sent)`,
    PLUGINS,
  ],
  walPush: [STORAGE, `${KEY}: encrypts and authenticates each file (only the key file's path belongs in archive_command)`, 'BACKUP_ENCRYPTION_ITERATIONS, BACKUP_ENCRYPTION_PROVIDER', 'BACKUP_COMPRESSION, BACKUP_COMPRESSION_LEVEL', 'PGDATA (when the file is not in a data directory\'s pg_wal)', 'WAL_PUSH_AHEAD, WAL_PUSH_PARALLEL, WAL_SPOOL_DIR: archiving ahead of the archiver', 'WAL_ARCHIVE_ACKNOWLEDGE: all (default) or primary', PLUGINS],
  walFetch: [STORAGE, `${KEY}: decrypts and authenticates each file`, 'BACKUP_ENCRYPTION_ITERATIONS, BACKUP_ENCRYPTION_PROVIDER', PLUGINS],
  verify: [`${CONNECTION}: only for the events' database name; no database is touched`, STORAGE, `${KEY}: to check the MAC and decode the backup`, NOTIFY, PLUGINS],
} as const;

export function withEnvironmentHelp(description: string, variables: readonly string[]): string {
  return `${description}\n\nEnvironment (also read from ./.env; the real environment wins):\n${variables.map((variable) => `  ${variable}`).join('\n')}`;
}
