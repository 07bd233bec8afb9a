import type pg from 'pg';

import type {RecordedDatabaseProperties} from '../metadata/index.js';

/**
 * What a plain pg_dump does not carry about the database itself, read from the catalogue in one
 * statement: encoding and locale (a database restored in another encoding mangles or refuses its
 * text), owner, connection limit, comment, the grants on the database (REVOKE CONNECT FROM PUBLIC
 * is how many teams close a database) and its settings, for everyone and per role.
 * `to_jsonb` keeps it to the columns this server has (the ICU locale column was renamed in 17).
 */
const PROPERTIES_SQL = `
  select pg_encoding_to_char(d.encoding) as encoding, d.datcollate as collate, d.datctype as ctype,
         to_jsonb(d) ->> 'datlocprovider' as provider, coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale') as icu_locale,
         pg_get_userbyid(d.datdba) as owner, d.datconnlimit as connection_limit, shobj_description(d.oid, 'pg_database') as comment,
         case when d.datacl is null then null else (
           select coalesce(json_agg(json_build_object('grantee', case when a.grantee = 0 then null else pg_get_userbyid(a.grantee) end,
                                                      'privilege', a.privilege_type, 'grantable', a.is_grantable) order by 1), '[]'::json)
             from aclexplode(d.datacl) a) end as acl,
         (select coalesce(json_agg(json_build_object('role', case when s.setrole = 0 then null else pg_get_userbyid(s.setrole) end, 'setting', c.setting)
                                   order by s.setrole, c.ordinality), '[]'::json)
            from pg_db_role_setting s, unnest(s.setconfig) with ordinality c(setting, ordinality) where s.setdatabase = d.oid) as settings
    from pg_database d where d.datname = coalesce($1, current_database())`;

interface PropertiesRow {
  encoding: string;
  collate: string;
  ctype: string;
  provider: string | null;
  icu_locale: string | null;
  owner: string;
  connection_limit: number;
  comment: string | null;
  acl: RecordedDatabaseProperties['acl'];
  settings: RecordedDatabaseProperties['settings'];
}

/** The properties of `database` (the connected one when undefined); undefined when it does not exist. */
export async function readDatabaseProperties(client: pg.Client, database?: string): Promise<RecordedDatabaseProperties | undefined> {
  const {rows} = await client.query<PropertiesRow>(PROPERTIES_SQL, [database ?? null]);
  const row = rows[0];
  if (!row) return undefined;
  return {
    encoding: row.encoding,
    collate: row.collate,
    ctype: row.ctype,
    localeProvider: row.provider === 'i' ? 'icu' : 'libc',
    icuLocale: row.provider === 'i' ? row.icu_locale : null,
    owner: row.owner,
    connectionLimit: row.connection_limit,
    comment: row.comment,
    acl: row.acl,
    settings: row.settings,
  };
}
