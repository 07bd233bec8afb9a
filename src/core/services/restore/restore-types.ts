import {SynapseError, cancelledError} from '../../errors/index.js';
import type {BackupMetadata} from '../../metadata/index.js';
import type {OwnershipFilterOptions} from '../../postgres/index.js';
import {type StoredBackupContext, assertBackupName} from '../stored-backup.js';
import type {LoadOutcome} from './load.js';

/** What a restore works with: the same as every reader of stored backups. */
export type RestoreContext = StoredBackupContext;

export interface RestorePlan {
  readonly backupName: string;
  /** The database the backup was taken from, per its metadata. */
  readonly sourceDatabase: string;
  /** The database that will hold the backup's content: the target. */
  readonly database: string;
  readonly targetExists: boolean;
  /** Where the current database is kept after the swap. */
  readonly previousDatabase: string | undefined;
  /** Scratch databases of earlier restores that died, dropped before this one began. */
  readonly reclaimedDatabases: readonly string[];
  readonly metadata: BackupMetadata;
}

export interface RestoreRequest {
  readonly name: string;
  /** Restore an unencrypted backup although a key is configured. */
  readonly allowUnencrypted?: boolean;
  /** Restore a backup whose metadata has no MAC although a key is configured (a legacy backup); nothing privileged comes from it. */
  readonly allowUnsigned?: boolean;
  /**
   * With --create-roles and authentic metadata: also grant memberships in superuser roles and in
   * pg_execute_server_program, pg_read_server_files and pg_write_server_files, which give a role
   * the server's own operating-system account.
   */
  readonly allowSuperuserEquivalentGrants?: boolean;
  /** Restore a backup of another database over the target. */
  readonly allowOtherDatabase?: boolean;
  /** Create the roles the backup records that this server lacks (a new server after a disaster), before loading. */
  readonly createRoles?: boolean;
  /** Leave out the dump's ownership (and privilege) statements: everything is owned by the restoring role. */
  readonly skip?: OwnershipFilterOptions;
  /**
   * Last chance to stop before any database is touched; rejects to cancel. It runs while the
   * backup's checksum and key are being checked; `signal` aborts it when one of those fails.
   */
  readonly confirm: (plan: RestorePlan, signal: AbortSignal) => Promise<void>;
}

export interface RestoreResult extends RestorePlan {
  /** Roles created by --create-roles; empty otherwise. */
  readonly createdRoles: readonly string[];
  readonly plaintextBytes: number;
  /** psql's warnings during the load (which succeeded), also given as a warning of the run. */
  readonly psqlWarnings: LoadOutcome['psqlWarnings'];
  readonly durationMs: number;
}

/** The flag that lets authentic metadata make a created role a member of a superuser-equivalent role. */
export const SUPERUSER_EQUIVALENT_FLAG = '--grant-superuser-equivalent';

/** One wording for every cancelled restore. */
export function cancelled(): SynapseError {
  return cancelledError('finish the restore', 'The target database was left as it was.');
}

/** Only a bare backup name is accepted: no paths, no `..`, nothing this tool did not name. */
export function assertRestorableName(name: string): void {
  assertBackupName(name, 'restore');
}
