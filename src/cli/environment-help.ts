/** The variables each command reads, for its --help: all configuration is environment (or .env). */
const CONNECTION = 'DATABASE_URL (or PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ~/.pgpass)';
const STORAGE = 'BACKUP_DIR, BACKUP_STORAGE, SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS';
const KEY = 'BACKUP_ENCRYPTION_KEY or BACKUP_ENCRYPTION_KEY_FILE';
const NOTIFY = 'NOTIFY_* (the notification sinks, NOTIFY_<SINK>_EVENTS, NOTIFY_TIMEOUT; see `synapse-backup check`)';
const PLUGINS = 'SYNAPSE_BACKUP_DATA_DIR (where installed plugins are)';

export const COMMAND_ENVIRONMENT = {
  run: [CONNECTION, STORAGE, KEY, 'BACKUP_ENCRYPTION_ITERATIONS, BACKUP_ENCRYPTION_PROVIDER', 'BACKUP_COMPRESSION, BACKUP_COMPRESSION_LEVEL', 'PG_BIN_DIR', 'SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS', NOTIFY, PLUGINS],
  list: [`${CONNECTION}: whose backups to show, and what earlier restores left`, STORAGE, `${KEY}: to check the metadata's MAC`, PLUGINS],
  restore: [CONNECTION, STORAGE, KEY, 'PG_BIN_DIR', 'SYNAPSE_BACKUP_LOCK_TIMEOUT_MS', 'SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS', NOTIFY, PLUGINS],
  cleanup: [`${CONNECTION}: for the databases earlier restores left`, STORAGE, `${KEY}: to check the metadata's MAC`, 'BACKUP_RETENTION_HOURLY, BACKUP_RETENTION_DAILY, BACKUP_RETENTION_MONTHLY', 'SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS', NOTIFY, PLUGINS],
  check: [CONNECTION, STORAGE, KEY, 'PG_BIN_DIR', NOTIFY, PLUGINS],
} as const;

export function withEnvironmentHelp(description: string, variables: readonly string[]): string {
  return `${description}\n\nEnvironment (also read from ./.env; the real environment wins):\n${variables.map((variable) => `  ${variable}`).join('\n')}`;
}
