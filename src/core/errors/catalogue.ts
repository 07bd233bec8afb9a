/**
 * Every failure a user can meet, with a stable code and the process exit status it maps to.
 * Codes and exit statuses are part of the public contract: scripts branch on them. Add new
 * entries; never renumber existing ones.
 */
export const ERROR_CATALOGUE = {
  E_INTERNAL: {exitCode: 1, suggestion: 'This is a bug in synapse-backup. Re-run with DEBUG=1 and report the output.'},
  E_CONFIG: {exitCode: 2, suggestion: 'Fix the configuration value named in the message (environment or .env) and try again.'},
  E_USAGE: {exitCode: 2, suggestion: 'Run the command with --help to see its arguments and flags.'},
  E_DB_UNREACHABLE: {exitCode: 3, suggestion: 'Check that PostgreSQL is running and that DATABASE_URL (or PGHOST/PGPORT) points at it.'},
  E_DB_AUTH: {exitCode: 3, suggestion: 'Check the user and password in DATABASE_URL (or PGUSER/PGPASSWORD) and the server\'s pg_hba.conf.'},
  E_DB_READ_ONLY: {exitCode: 3, suggestion: 'The server only accepts reads (a standby, or default_transaction_read_only): point DATABASE_URL at the primary.'},
  E_DB_QUERY: {exitCode: 3, suggestion: 'Read the server\'s message above; the database was left as it was.'},
  E_DB_PRIVILEGE: {exitCode: 3, suggestion: 'Grant the role the privilege named in the message, or run as a role that has it.'},
  E_TOOL_MISSING: {exitCode: 4, suggestion: 'Install the PostgreSQL client tools (Debian/Ubuntu: apt-get install postgresql-client) or set PG_BIN_DIR to the directory that holds pg_dump and psql.'},
  E_TOOL_VERSION: {exitCode: 4, suggestion: 'Install a pg_dump whose major version is at least the server\'s (e.g. apt-get install postgresql-client-<server major>) or point PG_BIN_DIR at it.'},
  E_DUMP_FAILED: {exitCode: 5, suggestion: 'Read pg_dump\'s message above; earlier backups are untouched. Fix the cause and run the backup again.'},
  E_RESTORE_FAILED: {exitCode: 6, suggestion: 'The target database was left as it was. Read psql\'s message above, fix the cause and run the restore again.'},
  E_STORAGE_UNWRITABLE: {exitCode: 7, suggestion: 'Make the backup location writable by this user (check BACKUP_DIR, its owner and its mode).'},
  E_STORAGE_FULL: {exitCode: 7, suggestion: 'Free space at the backup location (run `synapse-backup backup cleanup`) or point BACKUP_DIR elsewhere. Earlier backups are untouched.'},
  E_STORAGE: {exitCode: 7, suggestion: 'Check that the backup location is reachable and healthy, then try again.'},
  E_PLUGIN: {exitCode: 8, suggestion: 'Check the installed plugins with `synapse-backup plugins` and reinstall or remove the one named in the message.'},
  E_BACKUP_NOT_FOUND: {exitCode: 10, suggestion: 'Run `synapse-backup backup list` to see the backups that exist and pass one of those names.'},
  E_LOCKED: {exitCode: 11, suggestion: 'Another synapse-backup run holds the lock on this backup location. Wait for it to finish; if no run is active, the lock is stale and the message says which file to remove.'},
  E_WRONG_KEY: {exitCode: 12, suggestion: 'Set BACKUP_ENCRYPTION_KEY (or BACKUP_ENCRYPTION_KEY_FILE) to the key that was in use when the backup was made.'},
  E_KEY_REQUIRED: {exitCode: 12, suggestion: 'The backup is encrypted: set BACKUP_ENCRYPTION_KEY or BACKUP_ENCRYPTION_KEY_FILE.'},
  E_INTEGRITY: {exitCode: 13, suggestion: 'The stored file is damaged or incomplete. Restore a different backup (`synapse-backup backup list`) and check the storage for faults.'},
  E_METADATA: {exitCode: 13, suggestion: 'The backup\'s metadata is missing or unreadable, so its integrity cannot be checked. Restore another backup, or use the stock-tools recipe in the README if you must.'},
  E_NOT_AUTHENTIC: {exitCode: 14, suggestion: 'Someone who can write to the backup storage may have planted or changed this backup. Restore another backup (`synapse-backup backup list`), check who can write to the storage, and check that the configured key is the one in use when the backup was made.'},
  E_UNENCRYPTED: {exitCode: 14, suggestion: 'A key is configured, so every backup this storage should hold is encrypted; an unencrypted one may have been planted. If you made it yourself, pass --allow-unencrypted.'},
  E_OTHER_DATABASE: {exitCode: 2, suggestion: 'Point DATABASE_URL at the database the backup was taken from, or pass --allow-other-database to restore it over this one.'},
  E_RESTORE_TEST_FAILED: {exitCode: 6, suggestion: 'The backup loaded, but its data differs from what was counted at backup time (see the differences above). Do not rely on it: take a new backup, test-restore that one, and look for what changed the stored backup.'},
  E_VERIFY_FAILED: {exitCode: 13, suggestion: 'Each failed backup is named with the check it failed. Take a new backup now, and restore from one that verifies (`synapse-backup backup verify NAME`).'},
  E_CHECK_FAILED: {exitCode: 9, suggestion: 'Fix what the failed checks name (each says what to do), then run `synapse-backup check` again.'},
  E_ENCODING_MISMATCH: {exitCode: 2, suggestion: "Restore into a database of the backup's encoding: drop or rename the target (synapse-backup then creates it with the recorded encoding and locale), or point DATABASE_URL at another database name with --allow-other-database."},
  E_REPLICATION: {exitCode: 15, suggestion: 'The backup is safe at the locations the message names. Fix what it says about the others, then run `synapse-backup backup sync` to copy what they lack.'},
  E_WAL_NOT_FOUND: {exitCode: 16, suggestion: 'No location holds this WAL file. PostgreSQL asks for files that may not exist (the end of the archive, the next timeline), so during recovery this is expected once; otherwise check BACKUP_LOCATIONS and that archiving works (`synapse-backup status`).'},
  E_WAL_CONFLICT: {exitCode: 17, suggestion: 'Another cluster, or this one after a promotion without a new timeline, archives into the same place. Give each cluster a location of its own (BACKUP_LOCATIONS or BACKUP_DIR); never remove the archived file to make the push pass, it may be the only copy of that WAL.'},
  E_RECOVERY_TARGET: {exitCode: 2, suggestion: 'Pick a target the backup and the archived WAL reach: after the base backup ended (`synapse-backup backup list --json` gives each physical backup\'s stop time and LSN) and before the newest archived WAL (`synapse-backup status`), or pass --latest. Nothing was written.'},
  E_DATA_DIRECTORY: {exitCode: 2, suggestion: 'Restore into a new or empty directory (never a running server\'s data directory): pass --data-dir with a path that does not exist yet.'},
  E_SCRATCH_SPACE: {exitCode: 2, suggestion: 'A drill restores the whole cluster: free space in BACKUP_DRILL_DIR (default the temporary directory), or point BACKUP_DRILL_DIR at a file system with room for one restored data directory.'},
  E_CANCELLED: {exitCode: 130, suggestion: 'The operation was cancelled; nothing was changed.'},
} as const satisfies Record<string, {exitCode: number; suggestion: string}>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
