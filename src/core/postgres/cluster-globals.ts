import type pg from 'pg';

import type {RecordedGlobals} from '../metadata/index.js';

/**
 * The cluster-wide objects a database needs and pg_dump does not carry: the roles that own its
 * objects, hold its grants or its settings, the roles those are members of, the memberships among
 * them and their role-wide settings. Without them a plain dump fails on a new server at its first
 * `ALTER ... OWNER TO`. Password hashes are never here: they travel encrypted (see the metadata).
 */
export type ClusterGlobals = Pick<RecordedGlobals, 'roles' | 'memberships' | 'settings'>;
/** A role's attributes; `validUntil` as PostgreSQL prints it ('infinity' included), or null. */
export type RoleDefinition = RecordedGlobals['roles'][number];
/** `GRANT role TO member [WITH ADMIN OPTION]`. */
export type RoleMembership = RecordedGlobals['memberships'][number];
/** `ALTER ROLE role SET name TO value`, as pg_db_role_setting holds it (`name=value`). */
export type RoleSetting = RecordedGlobals['settings'][number];

/**
 * The roles this database refers to: through pg_shdepend (owners, grantees, policy roles), as its
 * owner, as a grantee on the database itself (a role granted only CONNECT), or in its per-role
 * settings; then, transitively, the roles they are members of.
 */
const REFERENCED_ROLES = `
  with recursive this_database as (select oid from pg_database where datname = current_database()),
  referenced(oid) as (
    select refobjid from pg_shdepend where dbid = (select oid from this_database) and refclassid = 'pg_authid'::regclass
    union select datdba from pg_database where oid = (select oid from this_database)
    union select setrole from pg_db_role_setting where setdatabase = (select oid from this_database) and setrole <> 0
    union select a.grantee from pg_database d, aclexplode(d.datacl) a where d.oid = (select oid from this_database) and a.grantee <> 0
    union select m.roleid from pg_auth_members m join referenced r on m.member = r.oid
  )
  select oid from referenced`;

export async function readClusterGlobals(client: pg.Client): Promise<ClusterGlobals> {
  const {rows: referenced} = await client.query<{oids: number[] | null}>(`select array_agg(oid) as oids from (${REFERENCED_ROLES}) referenced`);
  const oids = referenced[0]?.oids ?? [];
  const {rows: roles} = await client.query<{
    rolname: string;
    rolsuper: boolean;
    rolinherit: boolean;
    rolcreaterole: boolean;
    rolcreatedb: boolean;
    rolcanlogin: boolean;
    rolreplication: boolean;
    rolbypassrls: boolean;
    rolconnlimit: number;
    rolvaliduntil: string | null;
  }>(`select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil::text as rolvaliduntil
        from pg_roles where oid = any($1::oid[]) order by rolname`, [oids]);
  const {rows: memberships} = await client.query<{role: string; member: string; admin: boolean}>(
    `select pg_get_userbyid(roleid) as role, pg_get_userbyid(member) as member, admin_option as admin
       from pg_auth_members where member = any($1::oid[]) and roleid = any($1::oid[]) order by 1, 2`,
    [oids],
  );
  const {rows: settings} = await client.query<{role: string; setting: string}>(
    `select pg_get_userbyid(setrole) as role, unnest(setconfig) as setting from pg_db_role_setting
      where setdatabase = 0 and setrole = any($1::oid[]) order by 1`,
    [oids],
  );
  return {
    roles: roles.map((role) => ({
      name: role.rolname,
      superuser: role.rolsuper,
      inherit: role.rolinherit,
      createRole: role.rolcreaterole,
      createDb: role.rolcreatedb,
      canLogin: role.rolcanlogin,
      replication: role.rolreplication,
      bypassRls: role.rolbypassrls,
      connectionLimit: role.rolconnlimit,
      validUntil: role.rolvaliduntil,
    })),
    memberships,
    settings,
  };
}

/**
 * The password hashes (SCRAM or MD5 verifiers, never passwords) of `roles`; pg_authid is readable by
 * a superuser only, so this fails (42501) for anyone else.
 */
export async function readPasswordHashes(client: pg.Client, roles: readonly string[]): Promise<Record<string, string>> {
  const {rows} = await client.query<{rolname: string; rolpassword: string}>('select rolname, rolpassword from pg_authid where rolname = any($1::text[]) and rolpassword is not null', [roles]);
  return Object.fromEntries(rows.map((row) => [row.rolname, row.rolpassword]));
}
