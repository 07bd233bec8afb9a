import {expect} from 'chai';
import {execa} from 'execa';
import {randomBytes} from 'node:crypto';

import {startThrowawayCluster, type ThrowawayCluster} from '../../helpers/cluster.js';
import {databaseUrl, sql} from '../../helpers/database.js';
import {rewriteMetadata} from '../../helpers/metadata.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

/** What a restore must carry over besides the rows: owners, grants, roles and their wiring. */
const OWNERSHIP_SQL = `
  select 'table ' || schemaname || '.' || tablename || ' owner ' || tableowner from pg_tables where schemaname in ('public', 'app')
  union all select 'schema app owner ' || pg_get_userbyid(nspowner) from pg_namespace where nspname = 'app'
  union all select 'acl ' || relname || ' ' || coalesce(relacl::text, '-') from pg_class where relname in ('accounts', 'ledger')
  union all select 'rows accounts ' || count(*) from public.accounts
  union all select 'rows ledger ' || count(*) || ' sum ' || sum(amount) from app.ledger
  union all select 'sequence ' || last_value from app.ledger_id_seq
  order by 1`;

function rolesSql(prefix: string): string {
  return `
    select 'role ' || rolname || ' login=' || rolcanlogin || ' createdb=' || rolcreatedb || ' limit=' || rolconnlimit || ' password=' || coalesce(rolpassword, '-') from pg_authid where rolname like '${prefix}%'
    union all select 'member ' || pg_get_userbyid(member) || ' of ' || pg_get_userbyid(roleid) from pg_auth_members where pg_get_userbyid(member) like '${prefix}%'
    union all select 'setting ' || pg_get_userbyid(setrole) || ' ' || array_to_string(setconfig, ',') from pg_db_role_setting where setdatabase = 0 and pg_get_userbyid(setrole) like '${prefix}%'
    order by 1`;
}

const lines = (text: string): string[] => text.split('\n').filter(Boolean);

describe('disaster recovery onto a new, empty server (throwaway cluster)', function () {
  this.timeout(120_000);
  let workspace: Workspace;
  let cluster: ThrowawayCluster;
  let prefix: string;
  let name: string;

  before(async function () {
    prefix = `dr_${randomBytes(3).toString('hex')}_`;
    workspace = await createWorkspace();
    await sql(
      'postgres',
      `create role ${prefix}owner nologin;
       create role ${prefix}reader login password 'reader-secret' connection limit 7;
       create role ${prefix}writer login createdb password 'writer-secret' in role ${prefix}reader;
       alter role ${prefix}reader set statement_timeout = '5s';`,
    );
    await sql(
      workspace.database,
      `create table public.accounts (id int primary key, name text);
       insert into public.accounts select g, 'account ' || g from generate_series(1, 50) g;
       alter table public.accounts owner to ${prefix}owner;
       create schema app authorization ${prefix}writer;
       create table app.ledger (id bigserial primary key, amount numeric(10,2));
       insert into app.ledger (amount) select g * 1.5 from generate_series(1, 120) g;
       alter table app.ledger owner to ${prefix}writer;
       grant select on public.accounts to ${prefix}reader;
       grant select, insert on app.ledger to ${prefix}reader;`,
    );
    // The database's own properties, which a plain dump does not carry; one role is named only by a CONNECT grant.
    await sql(
      'postgres',
      `create role ${prefix}connector login;
       alter database ${workspace.database} owner to ${prefix}owner;
       revoke connect, temporary on database ${workspace.database} from public;
       grant connect on database ${workspace.database} to ${prefix}connector;
       grant connect, temporary on database ${workspace.database} to ${prefix}reader;
       alter database ${workspace.database} set work_mem = '7MB';
       alter role ${prefix}reader in database ${workspace.database} set statement_timeout = '9s';
       comment on database ${workspace.database} is 'the shop''s ledger';
       alter database ${workspace.database} connection limit 42;`,
    );
    name = await workspace.backup();
    // Passwords are checked there (SCRAM): a role restored with its hash must log in with its password.
    cluster = await startThrowawayCluster({passwordAuth: true});
  });

  after(async function () {
    await cluster?.stop();
    await workspace?.dispose();
    await sql('postgres', `drop role if exists ${prefix}writer; drop role if exists ${prefix}reader; drop role if exists ${prefix}owner; drop role if exists ${prefix}connector;`);
  });

  const onNewServer = (extra: Record<string, string> = {}) => ({DATABASE_URL: cluster.url('postgres', workspace.database), ...extra});

  it('records the roles the database needs in the metadata, with the password hashes only encrypted', async function () {
    const {globals} = await workspace.readMetadata(name);
    const roles = globals.roles.map((role: {name: string}) => role.name).filter((role: string) => role.startsWith(prefix));
    expect(roles).to.deep.equal([`${prefix}connector`, `${prefix}owner`, `${prefix}reader`, `${prefix}writer`]);
    expect(globals.memberships).to.deep.include({role: `${prefix}reader`, member: `${prefix}writer`, admin: false});
    expect(globals.settings).to.deep.include({role: `${prefix}reader`, setting: 'statement_timeout=5s'});
    expect(globals.passwords).to.equal('included');
    expect(JSON.stringify(globals)).not.to.include('SCRAM-SHA-256');
  });

  it('records the database\'s own properties, and counts a role granted only CONNECT among the roles it needs', async function () {
    const metadata = await workspace.readMetadata(name);
    expect(metadata.database.properties).to.deep.include({owner: `${prefix}owner`, connectionLimit: 42, comment: "the shop's ledger", encoding: 'UTF8'});
    expect(metadata.database.properties.acl).to.deep.include({grantee: `${prefix}connector`, privilege: 'CONNECT', grantable: false});
    expect(metadata.database.properties.settings).to.deep.include.members([{role: null, setting: 'work_mem=7MB'}, {role: `${prefix}reader`, setting: 'statement_timeout=9s'}]);
    expect(metadata.globals.roles.map((role: {name: string}) => role.name)).to.include(`${prefix}connector`);
  });

  it('fails on the new server without --create-roles, leaving nothing behind', async function () {
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], onNewServer());
    expect(result.exitCode).to.equal(6);
    expect(result.json.error.message).to.include('does not exist');
    expect(await cluster.psql(`select count(*) from pg_database where datname like '${workspace.database}%'`)).to.equal('0');
  });

  it('with --create-roles restores data, owners, grants, roles, memberships, settings and password hashes', async function () {
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--create-roles', '--json'], onNewServer());
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).to.equal(0);
    expect(result.json.result.createdRoles.filter((role: string) => role.startsWith(prefix)).sort()).to.deep.equal([`${prefix}connector`, `${prefix}owner`, `${prefix}reader`, `${prefix}writer`]);
    const sourceOwnership = (await sql(workspace.database, OWNERSHIP_SQL)).rows.map((row) => Object.values(row)[0]);
    expect(lines(await cluster.psql(OWNERSHIP_SQL, workspace.database))).to.deep.equal(sourceOwnership);
    const sourceRoles = (await sql('postgres', rolesSql(prefix))).rows.map((row) => Object.values(row)[0]);
    expect(lines(await cluster.psql(rolesSql(prefix)))).to.deep.equal(sourceRoles);
    // The password works there as it did here.
    const login = await execa('psql', ['-X', '-A', '-t', '-d', cluster.url(`${prefix}reader`, workspace.database, 'reader-secret'), '-c', 'select count(*) from public.accounts'], {reject: false});
    expect(login.stdout.trim(), login.stderr).to.equal('50');
    const wrong = await execa('psql', ['-X', '-d', cluster.url(`${prefix}reader`, workspace.database, 'wrong'), '-c', 'select 1'], {reject: false});
    expect(wrong.exitCode).not.to.equal(0);

    // The database itself came along: owner, grants (PUBLIC may not connect), settings, comment, limit.
    const properties = (database: string) => `
      select 'owner ' || pg_get_userbyid(datdba) || ' limit ' || datconnlimit || ' encoding ' || pg_encoding_to_char(encoding) from pg_database where datname = '${database}'
      union all select 'acl ' || coalesce(pg_get_userbyid(a.grantee), 'PUBLIC') || ' ' || a.privilege_type from pg_database d, aclexplode(d.datacl) a where d.datname = '${database}' and a.grantee <> 0
      union all select 'public ' || count(*) from pg_database d, aclexplode(d.datacl) a where d.datname = '${database}' and a.grantee = 0
      union all select 'comment ' || shobj_description(oid, 'pg_database') from pg_database where datname = '${database}'
      union all select 'setting ' || coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '-') || ' ' || array_to_string(s.setconfig, ',') from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase where d.datname = '${database}'
      order by 1`;
    const sourceProperties = (await sql('postgres', properties(workspace.database))).rows.map((row) => Object.values(row)[0]);
    expect(lines(await cluster.psql(properties(workspace.database)))).to.deep.equal(sourceProperties);
    expect(sourceProperties).to.include(`acl ${prefix}connector CONNECT`).and.include('public 0');
    await cluster.psql(`create role ${prefix}outsider login password 'outsider-secret'`);
    const publicConnect = await execa('psql', ['-X', '-d', cluster.url(`${prefix}outsider`, workspace.database, 'outsider-secret'), '-c', 'select 1'], {reject: false});
    expect(publicConnect.exitCode, 'a role without CONNECT').not.to.equal(0);
    expect(publicConnect.stderr).to.include('permission denied for database');
    await cluster.psql(`drop role ${prefix}outsider`);

    // A second restore finds the roles and changes none of them.
    await cluster.psql(`alter role ${prefix}reader connection limit 3`);
    const again = await workspace.run(['backup', 'restore', name, '--yes', '--create-roles', '--json'], onNewServer());
    expect(again.exitCode, again.stderr).to.equal(0);
    expect(again.json.result.createdRoles.filter((role: string) => role.startsWith(prefix))).to.deep.equal([]);
    expect(await cluster.psql(`select rolconnlimit from pg_roles where rolname = '${prefix}reader'`)).to.equal('3');
  });

  /** Every column of the roles that exist before a restore: an existing role must come out exactly as it went in. */
  const authidRows = (): Promise<string> => cluster.psql(`select a::text from pg_authid a where rolname not like '${prefix}%' order by rolname`);
  const membershipRows = (): Promise<string> =>
    cluster.psql(`select pg_get_userbyid(roleid) || ' <- ' || pg_get_userbyid(member) || ' ' || admin_option from pg_auth_members order by 1`);

  /** The attack of a writer of the storage: a genuine backup's metadata, its MAC removed, a role planted that joins the superuser and the server-program role. */
  async function plantEscalatingRole(planted: string, options: {sign: boolean}): Promise<void> {
    await rewriteMetadata(
      workspace.backupDir,
      name,
      (metadata) => {
        const reader = metadata.globals.roles.find((role: {name: string}) => role.name === `${prefix}reader`);
        metadata.globals.roles.push({...reader, name: planted, superuser: true, replication: true, createRole: true, canLogin: true});
        metadata.globals.settings.push({role: planted, setting: 'search_path=evil'});
        metadata.globals.memberships.push(
          {role: 'postgres', member: planted, admin: false},
          {role: 'pg_execute_server_program', member: planted, admin: true},
          {role: 'pg_read_all_data', member: planted, admin: false},
          // An existing role must not be pulled into a new one.
          {role: planted, member: 'postgres', admin: false},
        );
      },
      {sign: options.sign},
    );
  }

  it('refuses metadata whose MAC was stripped (exit 14) and creates nothing', async function () {
    const planted = `${prefix}stripped`;
    const before = await authidRows();
    await plantEscalatingRole(planted, {sign: false});
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--create-roles', '--json'], onNewServer());
    expect(result.exitCode, result.stderr).to.equal(14);
    expect(result.json.error.code).to.equal('E_NOT_AUTHENTIC');
    expect(result.json.error.message).to.include('no MAC').and.include('--allow-unsigned-metadata');
    expect(await cluster.psql(`select count(*) from pg_roles where rolname = '${planted}'`)).to.equal('0');
    expect(await authidRows()).to.equal(before);
  });

  it('from unauthenticated metadata (the legacy flag) grants no privilege, no membership in an existing role and no setting', async function () {
    const planted = `${prefix}legacy`;
    const beforeAuthid = await authidRows();
    const beforeMembers = await membershipRows();
    await plantEscalatingRole(planted, {sign: false});
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--create-roles', '--allow-unsigned-metadata', '--json'], onNewServer());
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.json.result.createdRoles).to.include(planted);
    expect(await cluster.psql(`select rolsuper || ' ' || rolreplication || ' ' || rolcreaterole from pg_roles where rolname = '${planted}'`)).to.equal('false false false');
    const warnings = result.json.warnings.join('\n');
    expect(warnings).to.include('no MAC');
    expect(warnings).to.include(`SUPERUSER of role "${planted}"`).and.include(`CREATEROLE of role "${planted}"`);
    expect(warnings).to.include(`membership of "${planted}" in existing role "postgres"`).and.include(`membership of "${planted}" in existing role "pg_execute_server_program"`);
    expect(warnings).to.include('authenticated by a key');
    expect(await cluster.psql(`select count(*) from pg_db_role_setting where setrole = (select oid from pg_roles where rolname = '${planted}')`)).to.equal('0');
    expect(await cluster.psql(`select count(*) from pg_auth_members where member = (select oid from pg_roles where rolname = '${planted}') or roleid = (select oid from pg_roles where rolname = '${planted}')`)).to.equal('0');
    // Existing roles come out exactly as they went in, every column, and are members of nothing new.
    expect(await authidRows()).to.equal(beforeAuthid);
    expect((await membershipRows()).split('\n').filter((line) => !line.includes(prefix))).to.deep.equal(beforeMembers.split('\n').filter((line) => !line.includes(prefix)));
    // The planted role cannot become the superuser, nor run a program on the server.
    expect(await cluster.psql(`select pg_has_role('${planted}', 'postgres', 'member')::text || ' ' || pg_has_role('${planted}', 'pg_execute_server_program', 'member')::text`)).to.equal('false false');
  });

  it('from authentic metadata grants memberships that give the server account only with --grant-superuser-equivalent', async function () {
    const planted = `${prefix}signed`;
    const beforeAuthid = await authidRows();
    await plantEscalatingRole(planted, {sign: true});
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--create-roles', '--json'], onNewServer());
    expect(result.exitCode, result.stderr).to.equal(0);
    const members = (): Promise<string> =>
      cluster.psql(`select string_agg(pg_get_userbyid(roleid), ',' order by pg_get_userbyid(roleid)) from pg_auth_members where member = (select oid from pg_roles where rolname = '${planted}')`);
    // Authentic: CREATEROLE and the predefined pg_read_all_data come along; the superuser and the server-program role do not.
    expect(await members()).to.equal('pg_read_all_data');
    expect(await cluster.psql(`select rolcreaterole::text from pg_roles where rolname = '${planted}'`)).to.equal('true');
    expect(result.json.warnings.join('\n')).to.include(`membership of "${planted}" in "pg_execute_server_program"`).and.include('--grant-superuser-equivalent');
    expect(await authidRows()).to.equal(beforeAuthid);

    await cluster.psql(`drop role ${planted}`);
    const granted = await workspace.run(['backup', 'restore', name, '--yes', '--create-roles', '--grant-superuser-equivalent', '--json'], onNewServer());
    expect(granted.exitCode, granted.stderr).to.equal(0);
    expect(await members()).to.equal('pg_execute_server_program,pg_read_all_data,postgres');
    expect(await authidRows()).to.equal(beforeAuthid);
  });

  it('creates a new database in the recorded encoding and locale, test-restores it there, and refuses an existing target of another encoding', async function () {
    const latin = `${workspace.database}_latin`;
    await sql('postgres', `create database ${latin} template template0 encoding 'LATIN1' lc_collate 'C' lc_ctype 'C'`);
    await sql(latin, "create table words (w text); insert into words values ('café'), ('naïve')");
    const backedUp = await workspace.backup({DATABASE_URL: databaseUrl(latin)});
    expect((await workspace.readMetadata(backedUp)).database.properties).to.include({encoding: 'LATIN1', collate: 'C', ctype: 'C'});
    const tested = await workspace.run(['backup', 'test-restore', backedUp, '--json'], {DATABASE_URL: databaseUrl(latin)});
    expect(tested.exitCode, tested.stdout).to.equal(0);

    const restored = await workspace.run(['backup', 'restore', backedUp, '--yes', '--json'], {DATABASE_URL: cluster.url('postgres', latin)});
    expect(restored.exitCode, restored.stdout).to.equal(0);
    expect(await cluster.psql(`select pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype from pg_database where datname = '${latin}'`)).to.equal('LATIN1 C C');
    // Read back as UTF-8 whatever psql's client encoding: the same characters, stored in LATIN1.
    expect(await cluster.psql("select string_agg(encode(convert_to(w, 'UTF8'), 'hex'), ',' order by w) from words", latin)).to.equal(
      ['café', 'naïve'].map((word) => Buffer.from(word).toString('hex')).join(','),
    );

    // The same name, now in UTF8: refused before anything is touched.
    await cluster.psql(`drop database ${latin}`);
    await cluster.psql(`create database ${latin}`);
    const refused = await workspace.run(['backup', 'restore', backedUp, '--yes', '--json'], {DATABASE_URL: cluster.url('postgres', latin)});
    expect(refused.exitCode, refused.stdout).to.equal(2);
    expect(refused.json.error.code).to.equal('E_ENCODING_MISMATCH');
    expect(refused.json.error.message).to.include('encoding LATIN1, the target has UTF8');
    expect(await cluster.psql(`select count(*) from pg_tables where tablename = 'words'`, latin)).to.equal('0');
    expect(await cluster.psql(`select count(*) from pg_database where datname like '${latin}_%'`)).to.equal('0');
    await cluster.psql(`drop database ${latin}`);
  });

  it('with --no-owner --no-privileges restores the data anywhere, owned by the restoring role', async function () {
    const target = `${workspace.database}_anywhere`;
    await cluster.psql(`create role anywhere_${prefix} login createdb password 'anywhere-secret'`);
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--no-owner', '--no-privileges', '--allow-other-database', '--json'], {
      DATABASE_URL: cluster.url(`anywhere_${prefix}`, target, 'anywhere-secret'),
    });
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).to.equal(0);
    const owners = lines(await cluster.psql(`select distinct tableowner from pg_tables where schemaname in ('public', 'app')`, target));
    expect(owners).to.deep.equal([`anywhere_${prefix}`]);
    expect(await cluster.psql('select count(*) from app.ledger', target)).to.equal('120');
  });
});
