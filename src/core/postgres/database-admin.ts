import type pg from 'pg';

import {SynapseError} from '../errors/index.js';
import {connect, databaseError} from './connect.js';
import type {DatabaseTarget} from './database-target.js';

const MAX_IDENTIFIER_BYTES = 63;

/** Settings whose values are lists of quoted items; pg_dump splits and quotes them one by one too. */
const LIST_SETTINGS = new Set(['search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries', 'shared_preload_libraries']);

/**
 * Splits a list setting as PostgreSQL stores it (`"$user", public, "My Schema"`) into its items,
 * honouring double quotes ("" inside quotes is one quote).
 */
export function splitSettingList(value: string): string[] {
  const items: string[] = [];
  let current = '';
  let quoted = false;
  let wasQuoted = false;
  for (let index = 0; index < value.length; index++) {
    const char = value[index]!;
    if (quoted) {
      if (char === '"' && value[index + 1] === '"') {
        current += '"';
        index++;
      } else if (char === '"') quoted = false;
      else current += char;
    } else if (char === '"') {
      quoted = true;
      wasQuoted = true;
    } else if (char === ',') {
      items.push(wasQuoted ? current : current.trim());
      current = '';
      wasQuoted = false;
    } else if (/\s/.test(char)) {
      // Blanks count only inside an unquoted item; trailing ones are trimmed when it ends.
      if (!wasQuoted && current !== '') current += char;
    } else current += char;
  }
  if (current !== '' || wasQuoted || items.length > 0) items.push(wasQuoted ? current : current.trim());
  return items;
}

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

  /**
   * Gives `to` the database-level properties of `from` that a plain pg_dump does not carry:
   * GRANTs on the database, per-database settings (ALTER DATABASE ... SET, also per role), the
   * connection limit and the comment. Without them a restored database could refuse the very
   * application it belongs to.
   */
  async copyDatabaseProperties(from: string, to: string): Promise<void> {
    const target = this.#quote(to);
    const action = `copy the properties of database '${from}' to`;
    const {rows: databases} = await this.#query(
      "select oid, datconnlimit, datacl is null as default_acl, shobj_description(oid, 'pg_database') as comment from pg_database where datname = $1",
      [from],
      action,
    );
    const source = databases[0] as {oid: number; datconnlimit: number; default_acl: boolean; comment: string | null} | undefined;
    if (!source) return;
    if (source.datconnlimit !== -1) await this.#query(`alter database ${target} connection limit ${Number(source.datconnlimit)}`, [], action);
    if (source.comment !== null) await this.#query(`comment on database ${target} is ${this.#client.escapeLiteral(source.comment)}`, [], action);
    if (!source.default_acl) {
      const {rows: grants} = await this.#query(
        `select case when a.grantee = 0 then null else pg_get_userbyid(a.grantee) end as grantee, a.privilege_type, a.is_grantable
           from pg_database d, aclexplode(d.datacl) a where d.oid = $1`,
        [source.oid],
        action,
      );
      await this.#query(`revoke all on database ${target} from public`, [], action);
      for (const grant of grants as Array<{grantee: string | null; privilege_type: string; is_grantable: boolean}>) {
        const grantee = grant.grantee === null ? 'public' : this.#quote(grant.grantee);
        await this.#query(`grant ${grant.privilege_type} on database ${target} to ${grantee}${grant.is_grantable ? ' with grant option' : ''}`, [], action);
      }
    }
    const {rows: settings} = await this.#query(
      `select case when s.setrole = 0 then null else pg_get_userbyid(s.setrole) end as role, unnest(s.setconfig) as setting
         from pg_db_role_setting s where s.setdatabase = $1`,
      [source.oid],
      action,
    );
    for (const {role, setting} of settings as Array<{role: string | null; setting: string}>) {
      const separator = setting.indexOf('=');
      const name = setting.slice(0, separator);
      const value = setting.slice(separator + 1);
      const values = LIST_SETTINGS.has(name.toLowerCase()) ? splitSettingList(value) : [value];
      const assignment = `set ${this.#quote(name)} to ${values.map((item) => this.#client.escapeLiteral(item)).join(', ')}`;
      const statement = role === null ? `alter database ${target} ${assignment}` : `alter role ${this.#quote(role)} in database ${target} ${assignment}`;
      await this.#query(statement, [], action);
    }
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
