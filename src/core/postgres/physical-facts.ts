import {SynapseError} from '../errors/index.js';
import {connect, databaseError} from './connect.js';
import type {DatabaseTarget} from './database-target.js';

/** What a physical backup needs to know of the server before it starts. */
export interface PhysicalServerFacts {
  readonly systemIdentifier: string;
  readonly walSegmentSize: number;
  readonly archiveMode: string;
  readonly archiveCommand: string;
  readonly inRecovery: boolean;
}

export async function readPhysicalServerFacts(target: DatabaseTarget): Promise<PhysicalServerFacts> {
  const client = await connect(target, 'connect to');
  try {
    const {rows} = await client.query<{sysid: string; segsize: string; mode: string; command: string; recovery: boolean}>(
      `select (select system_identifier::text from pg_control_system()) as sysid,
              (select setting from pg_settings where name = 'wal_segment_size') as segsize,
              current_setting('archive_mode') as mode, current_setting('archive_command') as command,
              pg_is_in_recovery() as recovery`,
    );
    const row = rows[0]!;
    return {systemIdentifier: row.sysid, walSegmentSize: Number(row.segsize), archiveMode: row.mode, archiveCommand: row.command, inRecovery: row.recovery};
  } catch (error) {
    throw databaseError(error, target, 'read the cluster identity of');
  } finally {
    await client.end().catch(() => {});
  }
}

/** A base backup without archiving would never be restorable: its WAL goes nowhere. */
export function assertArchivingFor(facts: PhysicalServerFacts): void {
  if (facts.archiveMode === 'off' || facts.archiveCommand.trim() === '' || facts.archiveCommand.trim() === '(disabled)') {
    throw new SynapseError('E_CONFIG', {
      message: `unable to take a physical backup: the server does not archive WAL (archive_mode=${facts.archiveMode}${facts.archiveCommand.trim() === '' ? ', archive_command is empty' : ''}), so the WAL the backup needs to be restored would be lost`,
      suggestion: "Set archive_mode = on and archive_command = 'synapse-backup wal push %p' as the README's PITR section shows, restart the server, then run the backup again. Nothing was written.",
    });
  }
}
