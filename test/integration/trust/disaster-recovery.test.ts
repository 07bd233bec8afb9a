import {expect} from 'chai';
import {execa} from 'execa';
import {randomBytes} from 'node:crypto';

import {startThrowawayCluster, type ThrowawayCluster} from '../../helpers/cluster.js';
import {sql} from '../../helpers/database.js';
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
    name = await workspace.backup();
    // Passwords are checked there (SCRAM): a role restored with its hash must log in with its password.
    cluster = await startThrowawayCluster({passwordAuth: true});
  });

  after(async function () {
    await cluster?.stop();
    await workspace?.dispose();
    await sql('postgres', `drop role if exists ${prefix}writer; drop role if exists ${prefix}reader; drop role if exists ${prefix}owner;`);
  });

  const onNewServer = (extra: Record<string, string> = {}) => ({DATABASE_URL: cluster.url('postgres', workspace.database), ...extra});

  it('records the roles the database needs in the metadata, with the password hashes only encrypted', async function () {
    const {globals} = await workspace.readMetadata(name);
    const roles = globals.roles.map((role: {name: string}) => role.name).filter((role: string) => role.startsWith(prefix));
    expect(roles).to.deep.equal([`${prefix}owner`, `${prefix}reader`, `${prefix}writer`]);
    expect(globals.memberships).to.deep.include({role: `${prefix}reader`, member: `${prefix}writer`, admin: false});
    expect(globals.settings).to.deep.include({role: `${prefix}reader`, setting: 'statement_timeout=5s'});
    expect(globals.passwords).to.equal('included');
    expect(JSON.stringify(globals)).not.to.include('SCRAM-SHA-256');
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
    expect(result.json.result.createdRoles.filter((role: string) => role.startsWith(prefix)).sort()).to.deep.equal([`${prefix}owner`, `${prefix}reader`, `${prefix}writer`]);
    const sourceOwnership = (await sql(workspace.database, OWNERSHIP_SQL)).rows.map((row) => Object.values(row)[0]);
    expect(lines(await cluster.psql(OWNERSHIP_SQL, workspace.database))).to.deep.equal(sourceOwnership);
    const sourceRoles = (await sql('postgres', rolesSql(prefix))).rows.map((row) => Object.values(row)[0]);
    expect(lines(await cluster.psql(rolesSql(prefix)))).to.deep.equal(sourceRoles);
    // The password works there as it did here.
    const login = await execa('psql', ['-X', '-A', '-t', '-d', cluster.url(`${prefix}reader`, workspace.database, 'reader-secret'), '-c', 'select count(*) from public.accounts'], {reject: false});
    expect(login.stdout.trim(), login.stderr).to.equal('50');
    const wrong = await execa('psql', ['-X', '-d', cluster.url(`${prefix}reader`, workspace.database, 'wrong'), '-c', 'select 1'], {reject: false});
    expect(wrong.exitCode).not.to.equal(0);

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
