import {createHash, randomBytes} from 'node:crypto';
import {setTimeout as sleep} from 'node:timers/promises';
import type pg from 'pg';

import type {RecordedDatabaseProperties, RecordedGlobals} from '../metadata/index.js';
import {SynapseError} from '../errors/index.js';
import {connect, databaseError} from './connect.js';
import {readDatabaseProperties} from './database-properties.js';
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

/** What a database is created with: its encoding and locale, and an owner where one is known to exist. */
export interface DatabaseShape {
  readonly owner?: string;
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  readonly localeProvider?: 'libc' | 'icu';
  readonly icuLocale?: string | null;
}

/** The encoding and locale recorded properties ask for, without the owner (who may not exist yet). */
export function shapeOf(properties: RecordedDatabaseProperties | undefined): DatabaseShape | undefined {
  if (!properties) return undefined;
  const {encoding, collate, ctype, localeProvider, icuLocale} = properties;
  return {encoding, collate, ctype, localeProvider, icuLocale};
}

export interface ExistingDatabase {
  readonly owner: string;
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  readonly allowConnections: boolean;
}

/**
 * Predefined roles whose members act as the server's operating-system account (run programs, read
 * and write its files): as good as a superuser.
 */
const SERVER_ACCOUNT_ROLES = new Set(['pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files']);

/** A name from a backup, quoted for a message: control characters escaped, so a planted name cannot forge lines. */
export function nameForMessage(name: string): string {
  return JSON.stringify(name).replaceAll('\u2028', '\\u2028').replaceAll('\u2029', '\\u2029');
}

/** An SQL identifier in double quotes, as PostgreSQL reads it: for hints a user pastes into psql. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `YYYYMMDD_HHMMSS` in UTC, as backup names and restore databases carry it. */
export function compactTimestamp(at: Date): string {
  return at.toISOString().replaceAll(/[-:]/g, '').replace('T', '_').slice(0, 15);
}

const SCRATCH_SUFFIX = /_restoring_\d{8}_\d{6}_[0-9a-f]{6}$/;

/** A scratch database name for a restore of `target`: a random part, so two names never collide. */
export function scratchDatabaseName(target: string, at: Date): string {
  return derivedDatabaseName(target, `restoring_${compactTimestamp(at)}_${randomBytes(3).toString('hex')}`);
}

/** Where a restore keeps the target's previous content; `unique` adds a random part for a second restore in the same second. */
export function previousDatabaseName(target: string, at: Date, unique = false): string {
  return derivedDatabaseName(target, `pre_restore_${compactTimestamp(at)}${unique ? `_${randomBytes(3).toString('hex')}` : ''}`);
}

const PREVIOUS_SUFFIX = /_pre_restore_\d{8}_\d{6}(_[0-9a-f]{6})?$/;

/** Whether `name` is where a restore of `target` kept the previous content. */
export function isPreviousOf(name: string, target: string): boolean {
  const suffix = PREVIOUS_SUFFIX.exec(name)?.[0];
  return suffix !== undefined && derivedDatabaseName(target, suffix.slice(1)) === name;
}

/** Whether `name` is a scratch database that a restore of `target` made. */
export function isScratchOf(name: string, target: string): boolean {
  const suffix = SCRATCH_SUFFIX.exec(name)?.[0];
  return suffix !== undefined && derivedDatabaseName(target, suffix.slice(1)) === name;
}

/**
 * `<base>_<suffix>`; where that exceeds PostgreSQL's 63-byte identifier limit, `base` is shortened
 * and a hash of the whole of it added (`<shortened>_<hash>_<suffix>`), so that two databases with a
 * long common prefix never derive names that could be taken for each other's.
 */
export function derivedDatabaseName(base: string, suffix: string): string {
  if (Buffer.byteLength(`${base}_${suffix}`) <= MAX_IDENTIFIER_BYTES) return `${base}_${suffix}`;
  const hash = createHash('sha256').update(base).digest('hex').slice(0, 8);
  let prefix = base;
  while (prefix !== '' && Buffer.byteLength(`${prefix}_${hash}_${suffix}`) > MAX_IDENTIFIER_BYTES) prefix = [...prefix].slice(0, -1).join('');
  return `${prefix}_${hash}_${suffix}`;
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

  /**
   * Connects to the maintenance database. Every lock wait of this session is bounded by
   * `lockTimeoutMs`, so nothing unrelated can make a restore hang; and the server checks every
   * second that we are still there, so a killed restore's statements are abandoned, not finished.
   */
  static async open(target: DatabaseTarget, options: {lockTimeoutMs: number}): Promise<DatabaseAdmin> {
    const maintenance = target.database === 'postgres' ? 'template1' : 'postgres';
    let client: pg.Client;
    try {
      client = await connect(target.withDatabase(maintenance), 'connect to');
    } catch (error) {
      if (!(error instanceof SynapseError) || !/does not exist/.test(error.message)) throw error;
      client = await connect(target.withDatabase('template1'), 'connect to');
    }
    const admin = new DatabaseAdmin(client, target);
    try {
      await admin.#query(`set lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs))}`, [], 'configure the session on');
      // PostgreSQL 14 and later; older servers notice a dead client only when they next write to it.
      await client.query("set client_connection_check_interval = '1s'").catch(() => {});
    } catch (error) {
      await admin.close();
      throw error;
    }
    return admin;
  }

  /**
   * Takes the one-restore-per-target lock: a session-level advisory lock in the maintenance
   * database, which the server frees when this connection ends, however it ends. False when
   * another restore of the same target holds it.
   */
  async tryLockRestoreOf(target: string): Promise<boolean> {
    return this.#tryClusterLock(`restore of ${target}`, 'lock the restore of');
  }

  /**
   * An advisory lock is scoped to the database the session is connected to, and jobs connect to
   * different maintenance databases (template1 when their target is `postgres`). So a lock counts
   * as ours only when no other session of the whole cluster holds the same key, in any database:
   * otherwise another job's cleanup could take a live restore for a dead one. Taken locally first,
   * then checked in pg_locks (cluster-wide); when two sessions race, both give up, which is safe.
   */
  async #tryClusterLock(label: string, action: string): Promise<boolean> {
    const key = "hashtextextended('synapse-backup ' || $1, 0)";
    const {rows} = await this.#query(`select pg_try_advisory_lock(${key}) as locked`, [label], action);
    if (!(rows[0] as {locked: boolean}).locked) return false;
    const {rows: others} = await this.#query(
      `select exists (select 1 from pg_locks where locktype = 'advisory' and objsubid = 1 and pid <> pg_backend_pid()
         and ((classid::bigint << 32) | objid::bigint) = ${key}) as held`,
      [label],
      action,
    );
    if (!(others[0] as {held: boolean}).held) return true;
    await this.#query(`select pg_advisory_unlock(${key})`, [label], action);
    return false;
  }

  /** Databases in which earlier restores of `target` kept its previous content. */
  async previousDatabasesOf(target: string): Promise<string[]> {
    const {rows} = await this.#query("select datname from pg_database where datname like '%\\_pre\\_restore\\_%' order by 1", [], 'list databases in');
    return (rows as Array<{datname: string}>).map((row) => row.datname).filter((name) => isPreviousOf(name, target));
  }

  /** A session-level advisory lock named by `label`, freed by the server when this session ends however it ends. */
  async tryAdvisoryLock(label: string): Promise<boolean> {
    return this.#tryClusterLock(label, 'take a lock on');
  }

  async advisoryUnlock(label: string): Promise<void> {
    await this.#query("select pg_advisory_unlock(hashtextextended('synapse-backup ' || $1, 0))", [label], 'release a lock on');
  }

  /** The databases whose names `pattern` matches. */
  async databasesMatching(pattern: RegExp): Promise<string[]> {
    const {rows} = await this.#query('select datname from pg_database order by 1', [], 'list databases in');
    return (rows as Array<{datname: string}>).map((row) => row.datname).filter((name) => pattern.test(name));
  }

  async unlockRestoreOf(target: string): Promise<void> {
    await this.advisoryUnlock(`restore of ${target}`);
  }

  /** Scratch databases of earlier restores of `target`; with the restore lock held, their runs are dead. */
  async scratchDatabasesOf(target: string): Promise<string[]> {
    const {rows} = await this.#query("select datname from pg_database where datname like '%\\_restoring\\_%' order by 1", [], 'list databases in');
    return (rows as Array<{datname: string}>).map((row) => row.datname).filter((name) => isScratchOf(name, target));
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

  /** An empty database with the encoding and locale of `shape` (and its owner, when given), to restore into; the server's defaults without one. */
  async createEmpty(name: string, shape: DatabaseShape | undefined): Promise<void> {
    const literal = (value: string): string => this.#client.escapeLiteral(value);
    const options = shape
      ? [
          ...(shape.owner ? [`owner ${this.#quote(shape.owner)}`] : []),
          `encoding ${literal(shape.encoding)}`,
          `lc_collate ${literal(shape.collate)}`,
          `lc_ctype ${literal(shape.ctype)}`,
          ...(shape.localeProvider === 'icu' && shape.icuLocale ? [`locale_provider icu icu_locale ${literal(shape.icuLocale)}`] : []),
        ]
      : [];
    try {
      await this.#query(`create database ${this.#quote(name)} template template0${options.length > 0 ? ` ${options.join(' ')}` : ''}`, [], `create database '${name}' in`);
    } catch (error) {
      if (shape && error instanceof SynapseError && error.code === 'E_DB_QUERY') {
        throw error.with({
          suggestion: `The backup's database has encoding ${shape.encoding} and locale ${shape.collate}/${shape.ctype}${shape.localeProvider === 'icu' ? ` (ICU ${shape.icuLocale})` : ''}: install that locale on this server (Debian: dpkg-reconfigure locales), then restore again.`,
        });
      }
      throw error;
    }
  }

  /** The properties of an existing database, as a backup records them. */
  async readProperties(name: string): Promise<RecordedDatabaseProperties | undefined> {
    try {
      return await readDatabaseProperties(this.#client, name);
    } catch (error) {
      throw databaseError(error, this.#target, `read the properties of database '${name}' on`);
    }
  }

  /**
   * Gives `to` the database-level properties of `from` that a plain pg_dump does not carry:
   * GRANTs on the database, per-database settings (ALTER DATABASE ... SET, also per role), the
   * connection limit and the comment. Without them a restored database could refuse the very
   * application it belongs to.
   */
  async copyDatabaseProperties(from: string, to: string): Promise<void> {
    const properties = await this.readProperties(from);
    if (!properties) return;
    const withheld = await this.applyDatabaseProperties(to, properties, {trusted: true, owner: false});
    if (withheld.length > 0) throw new SynapseError('E_RESTORE_FAILED', {message: `unable to copy the properties of database '${from}' to '${to}': ${withheld.join('; ')}`});
  }

  /**
   * Gives `to` recorded properties: the connection limit, the comment, and which of PUBLIC's
   * default privileges stand (revoking is never a risk); and, only when `trusted` (the metadata is
   * authentic, or the properties come from this server), the owner (`owner`), the grants to roles and
   * the settings, which run at every connection. What was not applied is returned, each with why.
   */
  async applyDatabaseProperties(to: string, properties: RecordedDatabaseProperties, options: {trusted: boolean; owner: boolean}): Promise<string[]> {
    const target = this.#quote(to);
    const action = `set the properties of database '${to}' on`;
    const withheld: string[] = [];
    const named = [properties.owner, ...(properties.acl ?? []).flatMap((grant) => (grant.grantee === null ? [] : [grant.grantee])), ...properties.settings.flatMap((setting) => (setting.role === null ? [] : [setting.role]))];
    const {rows} = await this.#query('select rolname from pg_roles where rolname = any($1::text[])', [named], action);
    const present = new Set((rows as Array<{rolname: string}>).map((row) => row.rolname));
    const apply = async (what: string, statement: string): Promise<void> => {
      try {
        await this.#query(statement, [], action);
      } catch (error) {
        withheld.push(`${what} (${(error as Error).message})`);
      }
    };
    const untrusted = 'the metadata is not authenticated by a key';
    if (options.owner) {
      if (!options.trusted) withheld.push(`owner ${nameForMessage(properties.owner)} (${untrusted})`);
      else if (!present.has(properties.owner)) withheld.push(`owner ${nameForMessage(properties.owner)} (no such role here; --create-roles creates it)`);
      else await apply(`owner ${nameForMessage(properties.owner)}`, `alter database ${target} owner to ${this.#quote(properties.owner)}`);
    }
    if (properties.connectionLimit !== -1) await apply('connection limit', `alter database ${target} connection limit ${Number(properties.connectionLimit)}`);
    if (properties.comment !== null) await apply('comment', `comment on database ${target} is ${this.#client.escapeLiteral(properties.comment)}`);
    if (properties.acl !== null) {
      await apply('the revocation of PUBLIC\'s default privileges', `revoke all on database ${target} from public`);
      for (const grant of properties.acl) {
        const statement = (grantee: string): string => `grant ${grant.privilege} on database ${target} to ${grantee}${grant.grantable ? ' with grant option' : ''}`;
        if (grant.grantee === null) await apply(`${grant.privilege} for PUBLIC`, statement('public'));
        else if (!options.trusted) withheld.push(`${grant.privilege} for ${nameForMessage(grant.grantee)} (${untrusted})`);
        else if (!present.has(grant.grantee)) withheld.push(`${grant.privilege} for ${nameForMessage(grant.grantee)} (no such role here)`);
        else await apply(`${grant.privilege} for ${nameForMessage(grant.grantee)}`, statement(this.#quote(grant.grantee)));
      }
    }
    for (const {role, setting} of properties.settings) {
      const separator = setting.indexOf('=');
      const name = setting.slice(0, separator);
      const value = setting.slice(separator + 1);
      const what = `setting ${nameForMessage(name)}${role === null ? '' : ` of role ${nameForMessage(role)}`}`;
      if (!options.trusted) {
        withheld.push(`${what} (${untrusted})`);
        continue;
      }
      if (role !== null && !present.has(role)) {
        withheld.push(`${what} (no such role here)`);
        continue;
      }
      const values = LIST_SETTINGS.has(name.toLowerCase()) ? splitSettingList(value) : [value];
      const assignment = `set ${this.#quote(name)} to ${values.map((item) => this.#client.escapeLiteral(item)).join(', ')}`;
      await apply(what, role === null ? `alter database ${target} ${assignment}` : `alter role ${this.#quote(role)} in database ${target} ${assignment}`);
    }
    return withheld;
  }

  /**
   * Creates the roles of `globals` that do not exist on this server, with their attributes and
   * password hashes (when given), their memberships and their role-wide settings. Existing roles are
   * never altered, nor made members of anything. What a created role may do beyond its own objects
   * depends on whether the metadata is authentic:
   *  - unauthenticated (no key, or a legacy or unencrypted backup accepted by the operator): no
   *    SUPERUSER, REPLICATION, BYPASSRLS or CREATEROLE, no membership in any role that existed before
   *    this restore (superusers and the predefined pg_* roles above all), no role settings;
   *  - authentic: SUPERUSER, REPLICATION and BYPASSRLS when the session can grant them, and
   *    memberships in superuser roles or in the roles that give the server's operating-system
   *    account only with `superuserEquivalent`.
   * What is left out is named in `withheld`.
   */
  async createMissingRoles(
    globals: RecordedGlobals,
    passwordHashes: Readonly<Record<string, string>>,
    options: {authentic: boolean; superuserEquivalent: boolean},
  ): Promise<{created: string[]; withheld: string[]}> {
    const action = 'create the roles of the backup on';
    const names = globals.roles.map((role) => role.name);
    const {rows: present} = await this.#query('select rolname from pg_roles where rolname = any($1::text[])', [names], action);
    const existing = new Set((present as Array<{rolname: string}>).map((row) => row.rolname));
    const {rows: me} = await this.#query('select rolsuper from pg_roles where rolname = current_user', [], action);
    const superuser = (me[0] as {rolsuper: boolean} | undefined)?.rolsuper === true;
    const created: string[] = [];
    const withheld: string[] = [];
    const privileged = options.authentic && superuser;
    for (const role of globals.roles) {
      if (existing.has(role.name)) continue;
      const attribute = (on: boolean, name: string): string => `${on ? '' : 'NO'}${name}`;
      for (const [on, name] of [[role.superuser, 'SUPERUSER'], [role.replication, 'REPLICATION'], [role.bypassRls, 'BYPASSRLS']] as const) {
        if (on && !privileged) withheld.push(`${name} of role ${nameForMessage(role.name)}`);
      }
      if (role.createRole && !options.authentic) withheld.push(`CREATEROLE of role ${nameForMessage(role.name)}`);
      const clauses = [
        attribute(role.superuser && privileged, 'SUPERUSER'),
        attribute(role.replication && privileged, 'REPLICATION'),
        attribute(role.bypassRls && privileged, 'BYPASSRLS'),
        attribute(role.inherit, 'INHERIT'),
        attribute(role.createRole && options.authentic, 'CREATEROLE'),
        attribute(role.createDb, 'CREATEDB'),
        attribute(role.canLogin, 'LOGIN'),
        `CONNECTION LIMIT ${Number(role.connectionLimit)}`,
        ...(role.validUntil === null ? [] : [`VALID UNTIL ${this.#client.escapeLiteral(role.validUntil)}`]),
        // A stored SCRAM or MD5 verifier: PostgreSQL recognises it and stores it as it is.
        ...(passwordHashes[role.name] === undefined ? [] : [`PASSWORD ${this.#client.escapeLiteral(passwordHashes[role.name]!)}`]),
      ];
      await this.#query(`create role ${this.#quote(role.name)} with ${clauses.join(' ')}`, [], `create role ${nameForMessage(role.name)} on`);
      created.push(role.name);
    }
    const ours = new Set(created);
    const groups = [...new Set(globals.memberships.filter((membership) => ours.has(membership.member)).map((membership) => membership.role))];
    const {rows: groupRows} = await this.#query('select rolname, rolsuper from pg_roles where rolname = any($1::text[])', [groups], action);
    const superuserGroups = new Set((groupRows as Array<{rolname: string; rolsuper: boolean}>).filter((row) => row.rolsuper).map((row) => row.rolname));
    for (const membership of globals.memberships) {
      const member = nameForMessage(membership.member);
      const group = nameForMessage(membership.role);
      // Only a role created here joins groups: making an existing role a member of one would change what it may do.
      if (!ours.has(membership.member)) {
        if (ours.has(membership.role)) withheld.push(`membership of existing role ${member} in ${group}`);
        continue;
      }
      if (!options.authentic && !ours.has(membership.role)) {
        withheld.push(`membership of ${member} in existing role ${group}`);
        continue;
      }
      if ((superuserGroups.has(membership.role) || SERVER_ACCOUNT_ROLES.has(membership.role)) && !options.superuserEquivalent) {
        withheld.push(`membership of ${member} in ${group}, which ${superuserGroups.has(membership.role) ? 'is a superuser' : "gives the server's operating-system account"}`);
        continue;
      }
      await this.#query(`grant ${this.#quote(membership.role)} to ${this.#quote(membership.member)}${membership.admin ? ' with admin option' : ''}`, [], action);
    }
    for (const {role, setting} of globals.settings) {
      if (!ours.has(role)) continue;
      // A setting runs at every login of the role (search_path, preload libraries): only from metadata a key vouches for.
      if (!options.authentic) {
        withheld.push(`setting ${nameForMessage(setting.slice(0, setting.indexOf('=')))} of role ${nameForMessage(role)}`);
        continue;
      }
      const separator = setting.indexOf('=');
      const name = setting.slice(0, separator);
      const value = setting.slice(separator + 1);
      const values = LIST_SETTINGS.has(name.toLowerCase()) ? splitSettingList(value) : [value];
      await this.#query(`alter role ${this.#quote(role)} set ${this.#quote(name)} to ${values.map((item) => this.#client.escapeLiteral(item)).join(', ')}`, [], action);
    }
    return {created, withheld};
  }

  async drop(name: string): Promise<void> {
    await this.#query(`drop database if exists ${this.#quote(name)} with (force)`, [], `drop database '${name}' in`);
  }

  /**
   * Puts `replacement` in the place of `target` and keeps the old one as `previous`, in one
   * transaction: a restore killed at any moment leaves `target` either as it was or fully swapped,
   * and never closed to connections. Sessions on `target` are ended inside the transaction; once the
   * first rename holds the database's lock, new ones wait and then find it renamed. A session
   * still leaving is waited for by PostgreSQL itself, then the rename is retried from a savepoint.
   */
  async swap(target: string, replacement: string, previous: string, existing: ExistingDatabase | undefined): Promise<void> {
    const action = `swap in the restored database '${target}' on`;
    if (!existing) {
      await this.#query(`alter database ${this.#quote(replacement)} rename to ${this.#quote(target)}`, [], `rename database '${replacement}' in`);
      return;
    }
    await this.#query('begin', [], action);
    try {
      for (let attempt = 1; ; attempt++) {
        await this.#query('savepoint swap', [], action);
        try {
          await this.#client.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [target]);
          await this.#client.query(`alter database ${this.#quote(target)} rename to ${this.#quote(previous)}`);
          break;
        } catch (error) {
          await this.#client.query('rollback to savepoint swap');
          // 55006: sessions reconnected faster than PostgreSQL's own five-second wait for them to leave.
          if ((error as {code?: string}).code !== '55006' || attempt >= 4) throw error;
          await sleep(200);
        }
      }
      await this.#client.query(`alter database ${this.#quote(replacement)} rename to ${this.#quote(target)}`);
      await this.#client.query('commit');
    } catch (error) {
      await this.#client.query('rollback').catch(() => {});
      throw this.#swapError(error, target, action);
    }
  }

  #swapError(error: unknown, target: string, action: string): SynapseError {
    const code = (error as {code?: string}).code;
    if (code === '55P03') {
      return new SynapseError('E_RESTORE_FAILED', {
        message: `unable to swap in the restored database '${target}': another session holds a lock on database '${target}' (lock_timeout reached); the target was left as it was`,
        suggestion: `Find the session with: select pid, datname, query from pg_stat_activity where pid in (select pid from pg_locks where locktype = 'object' and classid = 'pg_database'::regclass); end it, then run the restore again.`,
        cause: error,
      });
    }
    if (code === '55006') {
      return new SynapseError('E_RESTORE_FAILED', {
        message: `unable to swap in the restored database '${target}': sessions kept reconnecting to it; the target was left as it was`,
        suggestion: 'Stop the applications that connect to the database (or set its connection limit to 0) and run the restore again.',
        cause: error,
      });
    }
    return databaseError(error, this.#target, action);
  }
}
