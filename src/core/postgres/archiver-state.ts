import {readdir} from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

import {connect, databaseError} from './connect.js';
import type {DatabaseTarget} from './database-target.js';

/** What the server says about its archiving (pg_stat_archiver and the WAL it is writing). */
export interface ArchiverState {
  readonly archiveMode: string;
  /** archive_timeout in milliseconds; 0 when off. */
  readonly archiveTimeoutMs: number;
  readonly lastArchivedWal: string | undefined;
  readonly lastArchivedAt: Date | undefined;
  readonly failedCount: number;
  readonly lastFailedWal: string | undefined;
  readonly lastFailedAt: Date | undefined;
  /** The segment the server is writing now. */
  readonly currentWal: string;
  /** Finished segments after the last archived one, up to the one being written: what waits for the archiver. */
  readonly pendingSegments: number;
  /**
   * The `.ready` files in the data directory's pg_wal/archive_status: what waits for the archiver
   * as the server's host sees it. Undefined where status does not run on that host, or cannot
   * read the directory (it needs the server's user or root, and a role that may see data_directory).
   */
  readonly readyFiles?: number;
}

/** Hosts whose data directory is this machine's: a Unix socket, or the loopback. */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

async function readyFilesOn(target: DatabaseTarget, dataDirectory: string | null): Promise<{readyFiles?: number}> {
  const host = target.clientConfig().host ?? '';
  if (!dataDirectory || !(host === '' || host.startsWith('/') || LOCAL_HOSTS.has(host))) return {};
  try {
    const entries = await readdir(path.join(dataDirectory, 'pg_wal', 'archive_status'));
    return {readyFiles: entries.filter((name) => name.endsWith('.ready')).length};
  } catch {
    return {};
  }
}

/** Segments in a 4 GiB "log" of 16 MiB segments: the position of a segment name as one number. */
function segmentNumber(name: string, segmentsPerLog: number): number {
  return Number.parseInt(name.slice(8, 16), 16) * segmentsPerLog + Number.parseInt(name.slice(16, 24), 16);
}

/**
 * Asks the server about its archiving, briefly (status must not hang on a server that is away):
 * undefined with the reason when it does not answer or the role may not read the statistics.
 */
export async function readArchiverState(target: DatabaseTarget, timeoutMs = 3000): Promise<ArchiverState | {readonly unavailable: string}> {
  let client: pg.Client | undefined;
  try {
    client = await connect(target, 'ask about WAL archiving', {timeoutMs});
    await client.query(`SET statement_timeout = ${Math.round(timeoutMs)}`);
    const {rows} = await client.query<{
      archive_mode: string;
      archive_timeout: string;
      last_archived_wal: string | null;
      last_archived_time: Date | null;
      failed_count: string;
      last_failed_wal: string | null;
      last_failed_time: Date | null;
      current_wal: string;
      in_recovery: boolean;
      segment_size: string;
      data_directory: string | null;
    }>(`SELECT current_setting('archive_mode') AS archive_mode,
              (SELECT setting::bigint * 1000 FROM pg_settings WHERE name = 'archive_timeout') AS archive_timeout,
              a.last_archived_wal, a.last_archived_time, a.failed_count, a.last_failed_wal, a.last_failed_time,
              CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal,
              pg_is_in_recovery() AS in_recovery,
              (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size,
              (SELECT setting FROM pg_settings WHERE name = 'data_directory') AS data_directory
         FROM pg_stat_archiver a`);
    const row = rows[0]!;
    if (row.in_recovery) return {unavailable: 'the server is a standby; its primary archives'};
    const segmentsPerLog = Math.floor(0x1_0000_0000 / Number(row.segment_size));
    const lastArchived = row.last_archived_wal && /^[0-9A-F]{24}$/.test(row.last_archived_wal) ? row.last_archived_wal : undefined;
    const sameTimeline = lastArchived?.slice(0, 8) === row.current_wal.slice(0, 8);
    const pending = lastArchived && sameTimeline ? Math.max(0, segmentNumber(row.current_wal, segmentsPerLog) - segmentNumber(lastArchived, segmentsPerLog) - 1) : 0;
    return {
      archiveMode: row.archive_mode,
      archiveTimeoutMs: Number(row.archive_timeout),
      lastArchivedWal: row.last_archived_wal ?? undefined,
      lastArchivedAt: row.last_archived_time ?? undefined,
      failedCount: Number(row.failed_count),
      lastFailedWal: row.last_failed_wal ?? undefined,
      lastFailedAt: row.last_failed_time ?? undefined,
      currentWal: row.current_wal,
      pendingSegments: pending,
      ...(await readyFilesOn(target, row.data_directory)),
    };
  } catch (error) {
    // Worded by the catalogue, which also keeps a password out of the message.
    return {unavailable: databaseError(error, target, 'ask about WAL archiving').message};
  } finally {
    await client?.end().catch(() => {});
  }
}
