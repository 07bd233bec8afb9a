import type pg from 'pg';

import {SynapseError} from '../errors/index.js';
import {connect, databaseError} from './connect.js';
import type {DatabaseTarget} from './database-target.js';

const MAX_IDENTIFIER_BYTES = 63;

export interface ExistingDatabase {
  readonly owner: string;
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  readonly allowConnections: boolean;
}

/** `<base>_<suffix>`, shortening `base` so the whole fits PostgreSQL's 63-byte identifier limit. */
export function derivedDatabaseName(base: string, suffix: string): string {
  let prefix = base;
  while (Buffer.byteLength(`${prefix}_${suffix}`) > MAX_IDENTIFIER_BYTES) prefix = prefix.slice(0, -1);
  return `${prefix}_${suffix}`;
}

/**
 * A connection to the cluster's maintenance database, for work on databases that must have no
 * connection of ours while we change them (create, rename, drop).
 */
export class DatabaseAdmin {
  readonly #client: pg.Client;
  readonly #target: DatabaseTarget;

  private constructor(client: pg.Client, target: DatabaseTarget) {
    this.#client = client;
    this.#target = target;
  }

  static async open(target: DatabaseTarget): Promise<DatabaseAdmin> {
    const maintenance = target.database === 'postgres' ? 'template1' : 'postgres';
    try {
      return new DatabaseAdmin(await connect(target.withDatabase(maintenance), 'connect to'), target);
    } catch (error) {
      if (!(error instanceof SynapseError) || !/does not exist/.test(error.message)) throw error;
      return new DatabaseAdmin(await connect(target.withDatabase('template1'), 'connect to'), target);
    }
  }

  async close(): Promise<void> {
    await this.#client.end().catch(() => {});
  }

  #quote(name: string): string {
    return this.#client.escapeIdentifier(name);
  }

  async #query(sql: string, values: unknown[], action: string): Promise<pg.QueryResult> {
    try {
      return await this.#client.query(sql, values);
    } catch (error) {
      throw databaseError(error, this.#target, action);
    }
  }

  async inspect(name: string): Promise<ExistingDatabase | undefined> {
    const {rows} = await this.#query(
      `select pg_get_userbyid(datdba) as owner, pg_encoding_to_char(encoding) as encoding, datcollate as collate, datctype as ctype, datallowconn as allow
         from pg_database where datname = $1`,
      [name],
      'inspect database',
    );
    const row = rows[0] as {owner: string; encoding: string; collate: string; ctype: string; allow: boolean} | undefined;
    return row ? {owner: row.owner, encoding: row.encoding, collate: row.collate, ctype: row.ctype, allowConnections: row.allow} : undefined;
  }

  async exists(name: string): Promise<boolean> {
    return (await this.inspect(name)) !== undefined;
  }

  /** An empty database shaped like `like` (owner, encoding, locale), to restore into. */
  async createEmpty(name: string, like: ExistingDatabase | undefined): Promise<void> {
    const options = like
      ? ` owner ${this.#quote(like.owner)} encoding ${this.#client.escapeLiteral(like.encoding)} lc_collate ${this.#client.escapeLiteral(like.collate)} lc_ctype ${this.#client.escapeLiteral(like.ctype)}`
      : '';
    await this.#query(`create database ${this.#quote(name)} template template0${options}`, [], `create database '${name}' in`);
  }

  async drop(name: string): Promise<void> {
    await this.#query(`drop database if exists ${this.#quote(name)} with (force)`, [], `drop database '${name}' in`);
  }

  /**
   * Puts `replacement` in the place of `target` and keeps the old one as `previous`, in one
   * transaction so that `target` is never missing. Sessions connected to `target` are ended;
   * new ones are refused until the swap is done.
   */
  async swap(target: string, replacement: string, previous: string, existing: ExistingDatabase | undefined): Promise<void> {
    if (!existing) {
      await this.#query(`alter database ${this.#quote(replacement)} rename to ${this.#quote(target)}`, [], `rename database '${replacement}' in`);
      return;
    }
    await this.#query(`alter database ${this.#quote(target)} allow_connections false`, [], `close database '${target}' to new sessions in`);
    try {
      for (let attempt = 1; ; attempt++) {
        await this.#query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [target], `end sessions on '${target}' in`);
        try {
          await this.#client.query('begin');
          await this.#client.query(`alter database ${this.#quote(target)} rename to ${this.#quote(previous)}`);
          await this.#client.query(`alter database ${this.#quote(replacement)} rename to ${this.#quote(target)}`);
          await this.#client.query('commit');
          break;
        } catch (error) {
          await this.#client.query('rollback').catch(() => {});
          // 55006: a session was still connected (terminating is asynchronous); try again shortly.
          if ((error as {code?: string}).code !== '55006' || attempt >= 20) throw databaseError(error, this.#target, `swap in the restored database '${target}' on`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    } catch (error) {
      await this.#query(`alter database ${this.#quote(target)} allow_connections ${existing.allowConnections}`, [], 'reopen database').catch(() => {});
      throw error;
    }
    await this.#query(`alter database ${this.#quote(previous)} allow_connections ${existing.allowConnections}`, [], `reopen database '${previous}' in`);
  }
}
