import type pg from 'pg';

import type {RecordedDatabaseProperties} from '../metadata/index.js';
import {readClusterGlobals, readPasswordHashes, type ClusterGlobals} from './cluster-globals.js';
import {readDatabaseProperties} from './database-properties.js';
import {connect, databaseError} from './connect.js';
import type {DatabaseTarget} from './database-target.js';
import {countTableRows, readSequences, type DatabaseFingerprint, type SequencePosition} from './fingerprint.js';

/**
 * A REPEATABLE READ transaction whose snapshot is exported for pg_dump (`--snapshot`), so that the
 * fingerprint counts exactly what pg_dump dumps. It must stay open until pg_dump has imported the
 * snapshot; it is closed after the dump, as pg_dump closes its own.
 */
export class DumpSnapshot {
  readonly #client: pg.Client;
  readonly #target: DatabaseTarget;
  readonly #sequences: SequencePosition[];
  readonly id: string;
  /** The roles the database needs, or why they could not be read. */
  readonly globals: ClusterGlobals | {readonly unavailable: string};
  /** The referenced roles' password hashes: only when asked for and readable (a superuser). */
  readonly passwordHashes: Record<string, string> | undefined;
  /** The database's own properties (encoding, owner, grants, settings), or why they could not be read. */
  readonly properties: RecordedDatabaseProperties | {readonly unavailable: string};

  private constructor(
    client: pg.Client,
    target: DatabaseTarget,
    id: string,
    sequences: SequencePosition[],
    globals: DumpSnapshot['globals'],
    passwordHashes: DumpSnapshot['passwordHashes'],
    properties: DumpSnapshot['properties'],
  ) {
    this.properties = properties;
    this.#client = client;
    this.#target = target;
    this.id = id;
    this.#sequences = sequences;
    this.globals = globals;
    this.passwordHashes = passwordHashes;
  }

  /** Exports the snapshot, and reads the sequences before pg_dump can: pg_dump's values are then at or past ours. */
  static async export(target: DatabaseTarget, options: {passwordHashes: boolean}): Promise<DumpSnapshot> {
    const client = await connect(target, 'connect to');
    try {
      await client.query('begin isolation level repeatable read read only');
      // The counts run beside pg_dump: on one worker each, they leave the server's other cores to it.
      await client.query('set local max_parallel_workers_per_gather = 0');
      const {rows} = await client.query<{id: string}>('select pg_export_snapshot() as id');
      const sequences = await readSequences(client);
      // A failed read would abort the transaction pg_dump's snapshot lives in: each is tried under a savepoint.
      const attempt = async <T>(read: () => Promise<T>): Promise<T | {unavailable: string}> => {
        await client.query('savepoint globals');
        try {
          return await read();
        } catch (error) {
          await client.query('rollback to savepoint globals');
          return {unavailable: (error as Error).message};
        }
      };
      const globals = await attempt(() => readClusterGlobals(client));
      const hashes = options.passwordHashes && !('unavailable' in globals) ? await attempt(() => readPasswordHashes(client, globals.roles.map((role) => role.name))) : undefined;
      const properties = await attempt(async () => (await readDatabaseProperties(client)) ?? {unavailable: 'the database is not in pg_database'});
      return new DumpSnapshot(client, target, rows[0]!.id, sequences, globals, hashes && !('unavailable' in hashes) ? hashes : undefined, properties);
    } catch (error) {
      await client.end().catch(() => {});
      throw databaseError(error, target, 'export a snapshot of');
    }
  }

  /** Counts, in the exported snapshot; run while pg_dump dumps the same snapshot. */
  async fingerprint(): Promise<DatabaseFingerprint> {
    try {
      return {tables: await countTableRows(this.#client), sequences: this.#sequences};
    } catch (error) {
      throw databaseError(error, this.#target, 'count the rows of');
    }
  }

  async close(): Promise<void> {
    await this.#client.query('commit').catch(() => {});
    await this.#client.end().catch(() => {});
  }
}

