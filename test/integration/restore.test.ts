import {expect} from 'chai';
import {existsSync} from 'node:fs';
import {mkdir, open, readFile, rm, truncate, writeFile} from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

import {spawnCli, stderrReaches} from '../helpers/cli.js';
import {databaseNames, seedSampleData, snapshotDatabase, sql} from '../helpers/database.js';
import {fakeBinDir, versionAware} from '../helpers/fake-tools.js';
import {rewriteMetadata} from '../helpers/metadata.js';
import {mountTmpfs, remountReadOnly, unmount} from '../helpers/mounts.js';
import {createWorkspace, type Workspace} from '../helpers/workspace.js';

async function flipByte(file: string, position: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}

describe('backup restore', function () {
  let workspace: Workspace;
  let before: Record<string, string[]>;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 300);
    before = await snapshotDatabase(workspace.database);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  /** The database must be exactly as it was and no scratch database may be left behind. */
  async function expectUntouched(changed: Record<string, string[]>): Promise<void> {
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(changed);
    expect(await databaseNames(workspace.database)).to.deep.equal([workspace.database]);
  }

  async function changeDatabase(): Promise<Record<string, string[]>> {
    await sql(workspace.database, "create table created_after_backup (id int); insert into created_after_backup values (1); delete from orders where id % 2 = 0; update customers set name = 'changed'");
    return snapshotDatabase(workspace.database);
  }

  it('restores exactly the backup content and keeps the previous database', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    expect(changed).not.to.deep.equal(before);

    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
    const previous = result.json.result.previousDatabase;
    expect(previous).to.match(new RegExp(`^${workspace.database}_pre_restore_\\d{8}_\\d{6}$`));
    expect(await snapshotDatabase(previous)).to.deep.equal(changed);
    expect(await databaseNames(workspace.database)).to.deep.equal([workspace.database, previous].sort());
  });

  it('carries database-level grants, settings, connection limit and comment over to the restored database', async function () {
    const role = `${workspace.database}_app`;
    await sql(
      'postgres',
      `create role ${role} login;
       revoke all on database "${workspace.database}" from public;
       grant connect, temporary on database "${workspace.database}" to ${role};
       alter database "${workspace.database}" set work_mem = '7MB';
       alter database "${workspace.database}" set search_path = "$user", public, "Odd Schema";
       alter role ${role} in database "${workspace.database}" set statement_timeout = '5s';
       alter database "${workspace.database}" connection limit 42;
       comment on database "${workspace.database}" is 'the app''s database'`,
    );
    const properties = `select datacl::text as acl, datconnlimit, shobj_description(d.oid, 'pg_database') as comment,
        (select array_agg(coalesce(r.rolname, '-') || ':' || cfg order by 1) from pg_db_role_setting s left join pg_roles r on r.oid = s.setrole, unnest(s.setconfig) cfg where s.setdatabase = d.oid) as settings
      from pg_database d where datname = '${workspace.database}'`;
    try {
      const expected = (await sql('postgres', properties)).rows[0];
      const name = await workspace.backup();
      await changeDatabase();
      const result = await workspace.run(['backup', 'restore', name, '--yes']);
      expect(result.exitCode, result.stderr).to.equal(0);
      expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
      const actual = (await sql('postgres', properties)).rows[0];
      expect(actual.settings).to.deep.equal(expected.settings);
      expect(actual.datconnlimit).to.equal(42);
      expect(actual.comment).to.equal("the app's database");
      const privileges = async (who: string) =>
        (await sql('postgres', `select has_database_privilege('${who}', '${workspace.database}', 'CONNECT') as c, has_database_privilege('${who}', '${workspace.database}', 'TEMPORARY') as t`)).rows[0];
      expect(await privileges(role)).to.deep.equal({c: true, t: true});
      const publicRole = `${workspace.database}_other`;
      await sql('postgres', `create role ${publicRole}`);
      expect(await privileges(publicRole)).to.deep.equal({c: false, t: false});
      await sql('postgres', `drop role ${publicRole}`);
    } finally {
      await workspace.dispose();
      workspace = await createWorkspace();
      await sql('postgres', `drop owned by ${role} cascade`).catch(() => {});
      await sql('postgres', `drop role if exists ${role}`);
    }
  });

  it('restores from a backup directory mounted read-only', async function () {
    const mountPoint = path.join(workspace.cwd, 'readonly-backups');
    await mkdir(mountPoint);
    await mountTmpfs(mountPoint, {sizeBytes: 8 * 1024 * 1024});
    try {
      const name = await workspace.backup({BACKUP_DIR: mountPoint});
      await changeDatabase();
      await remountReadOnly(mountPoint, true);
      const listed = await workspace.run(['backup', 'list', '--json'], {BACKUP_DIR: mountPoint});
      expect(listed.json.result.backups.map((backup: {name: string}) => backup.name)).to.deep.equal([name]);
      const result = await workspace.run(['backup', 'restore', name, '--yes'], {BACKUP_DIR: mountPoint});
      expect(result.exitCode, result.stderr).to.equal(0);
      expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
    } finally {
      await unmount(mountPoint);
    }
  });

  it('reports a backup directory that does not exist, without creating it', async function () {
    const missing = path.join(workspace.cwd, 'no-such-dir');
    for (const args of [['backup', 'list', '--json'], ['backup', 'restore', 'backup_hourly_20260101_000000.sql.gz', '--yes', '--json']]) {
      const result = await workspace.run(args, {BACKUP_DIR: missing});
      expect(result.exitCode, args.join(' ')).to.equal(7);
      expect(result.json.error.message).to.include('does not exist');
    }
    expect(existsSync(missing)).to.equal(false);
  });

  it('restores an unencrypted backup', async function () {
    const name = await workspace.backup({BACKUP_ENCRYPTION_KEY: undefined});
    await changeDatabase();
    const result = await workspace.run(['backup', 'restore', name, '--yes'], {BACKUP_ENCRYPTION_KEY: undefined});
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
  });

  it('creates the target database when it does not exist', async function () {
    const name = await workspace.backup();
    await sql('postgres', `drop database "${workspace.database}" with (force)`);
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.json.result.previousDatabase).to.equal(undefined);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
  });

  it('ends sessions connected to the target at the swap', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    const session = new pg.Client({connectionString: workspace.databaseUrl});
    const ended = new Promise<Error>((resolve) => session.on('error', resolve));
    await session.connect();
    const result = await workspace.run(['backup', 'restore', name, '--yes']);
    expect(result.exitCode, result.stderr).to.equal(0);
    expect((await ended).message).to.match(/terminat/i);
    await session.end().catch(() => {});
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
    expect(changed).not.to.deep.equal(before);
  });

  const damages: Array<[string, (file: string) => Promise<void>, string, number]> = [
    ['a flipped byte', (file) => flipByte(file, 100), 'E_INTEGRITY', 13],
    ['a truncated file', async (file) => truncate(file, 64), 'E_INTEGRITY', 13],
  ];
  for (const [label, damage, code, exitCode] of damages) {
    it(`refuses ${label} before touching the database`, async function () {
      const name = await workspace.backup();
      const changed = await changeDatabase();
      await damage(path.join(workspace.backupDir, name));
      const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
      expect(result.exitCode).to.equal(exitCode);
      expect(result.json.error.code).to.equal(code);
      expect(result.json.error.message).to.match(/damaged/);
      await expectUntouched(changed);
    });
  }

  it('refuses to swap in a dump that decodes differently from the one backed up, though the file is intact', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    // Signed again with the key: only a bug of ours could make an authentic backup decode differently.
    await rewriteMetadata(workspace.backupDir, name, (metadata) => {
      metadata.checksums.plaintext = metadata.checksums.plaintext.replace(/^./, (digit: string) => (digit === '0' ? '1' : '0'));
    });
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(result.exitCode).to.equal(13);
    expect(result.json.error.code).to.equal('E_INTEGRITY');
    expect(result.json.error.message).to.match(/stored file is intact, but decoding it gave \d+ bytes of dump that do not match/);
    expect(result.json.error.suggestion).to.match(/stock-tools recipe/);
    await expectUntouched(changed);
  });

  it('stops the countdown as soon as the checksum fails, leaving no scratch database', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    await flipByte(path.join(workspace.backupDir, name), 100);
    const started = Date.now();
    const result = await workspace.run(['backup', 'restore', name, '--json']);
    expect(result.exitCode).to.equal(13);
    expect(result.json.error.code).to.equal('E_INTEGRITY');
    // The countdown is 5 s; the verification ends it well before.
    expect(Date.now() - started).to.be.lessThan(4500);
    expect(await databaseNames(`${workspace.database}_restoring`)).to.deep.equal([]);
    await expectUntouched(changed);
  });

  it('stops the countdown as soon as the key fails, leaving no scratch database and starting no psql load', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    // Metadata without a MAC (an older backup): only the key check on the file's first block can tell.
    await rewriteMetadata(workspace.backupDir, name, () => {}, {sign: false});
    // Every psql the restore starts leaves a line; only its version probe may run.
    const calls = path.join(workspace.cwd, 'psql-calls');
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'logged-bin'), {psql: `echo "$*" >> ${calls}\nexec psql "$@"`});
    const result = await workspace.run(['backup', 'restore', name, '--allow-unsigned-metadata', '--json'], {BACKUP_ENCRYPTION_KEY: 'another-key-that-is-long-enough-0123456789', PG_BIN_DIR: binDir});
    expect(result.exitCode, result.stdout).to.equal(12);
    expect((await readFile(calls, 'utf8')).trim().split('\n')).to.deep.equal(['--version']);
    expect(result.json.error.code).to.equal('E_WRONG_KEY');
    expect(result.json.error.message).to.match(/checksum is intact/);
    expect(await databaseNames(`${workspace.database}_restoring`)).to.deep.equal([]);
    await expectUntouched(changed);
  });

  it("shows psql's warnings of a restore that succeeds, counted, in --json too", async function () {
    const name = await workspace.backup();
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'warning-bin'), {psql: versionAware('psql', 'echo "psql:<stdin>:42: WARNING:  no privileges were granted for \\"t\\"" >&2\nexec psql "$@"')});
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode, result.stdout).to.equal(0);
    expect(result.json.result.psqlWarnings).to.deep.equal({lines: 1, text: 'psql:<stdin>:42: WARNING:  no privileges were granted for "t"'});
    expect(result.json.warnings.join('\n')).to.include('psql wrote 1 line of warnings').and.include('no privileges were granted');
    const text = await workspace.run(['backup', 'restore', name, '--yes'], {PG_BIN_DIR: binDir});
    expect(text.stderr).to.include('WARNING:  no privileges were granted');
  });

  it('says so when SYNAPSE_BACKUP_LOCK_TIMEOUT_MS cannot be read, and restores with the default', async function () {
    const name = await workspace.backup();
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {SYNAPSE_BACKUP_LOCK_TIMEOUT_MS: 'soon'});
    expect(result.exitCode, result.stdout).to.equal(0);
    expect(result.json.warnings.join('\n')).to.include("SYNAPSE_BACKUP_LOCK_TIMEOUT_MS 'soon'").and.include('using the default (10000 ms)');
  });

  it('reports a wrong key as a wrong key, before touching the database', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {BACKUP_ENCRYPTION_KEY: 'another-key-that-is-long-enough-0123456789'});
    expect(result.exitCode).to.equal(12);
    expect(result.json.error.code).to.equal('E_WRONG_KEY');
    expect(result.json.error.message).to.match(/neither its metadata's MAC nor its first block/);
    expect(result.stdout).not.to.include('another-key-that-is-long-enough');
    await expectUntouched(changed);
  });

  it('asks for a key when the backup is encrypted and none is configured', async function () {
    const name = await workspace.backup();
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {BACKUP_ENCRYPTION_KEY: undefined});
    expect(result.exitCode).to.equal(12);
    expect(result.json.error.code).to.equal('E_KEY_REQUIRED');
  });

  it('refuses a backup whose metadata is missing', async function () {
    const name = await workspace.backup();
    await rm(path.join(workspace.backupDir, `${name}.meta.json`));
    const changed = await changeDatabase();
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(result.exitCode).to.equal(13);
    expect(result.json.error.code).to.equal('E_METADATA');
    await expectUntouched(changed);
    const listed = await workspace.run(['backup', 'list']);
    expect(listed.stdout).to.match(new RegExp(`${name.replaceAll('.', '\\.')}.*\\[metadata missing`));
  });

  it('refuses a backup whose metadata is unreadable, and lists it as such', async function () {
    const name = await workspace.backup();
    const metadataFile = path.join(workspace.backupDir, `${name}.meta.json`);
    await writeFile(metadataFile, (await readFile(metadataFile, 'utf8')).slice(0, 50));
    const changed = await changeDatabase();
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(result.exitCode).to.equal(13);
    expect(result.json.error.code).to.equal('E_METADATA');
    expect(result.json.error.message).to.include('not valid JSON');
    await expectUntouched(changed);
    const listed = await workspace.run(['backup', 'list', '--json']);
    expect(listed.json.result.backups[0]).to.include({name, health: 'metadata-unreadable'});
    const cleanup = await workspace.run(['backup', 'cleanup', '--json'], {BACKUP_RETENTION_HOURLY: '0'});
    expect(cleanup.json.result.removedKeys).to.deep.equal([]);
    expect(await workspace.backupFiles()).to.deep.equal([name, `${name}.meta.json`]);
  });

  const badNames: Array<[string, number, string]> = [
    ['../../etc/passwd', 2, 'E_USAGE'],
    ['/tmp/backup_hourly_20260101_000000.sql.gz', 2, 'E_USAGE'],
    ['backup_hourly_20200101_000000.sql.gz.enc', 10, 'E_BACKUP_NOT_FOUND'],
  ];
  for (const [name, exitCode, code] of badNames) {
    it(`refuses '${name}' (${code})`, async function () {
      await mkdir(workspace.backupDir, {recursive: true});
      const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
      expect(result.exitCode).to.equal(exitCode);
      expect(result.json.error.code).to.equal(code);
    });
  }

  it('leaves the database as it was when psql hits an SQL error', async function () {
    const role = `${workspace.database}_owner`;
    await sql(workspace.database, `create role ${role}; create table owned_elsewhere (id int); alter table owned_elsewhere owner to ${role}`);
    const name = await workspace.backup();
    await sql(workspace.database, `drop table owned_elsewhere; drop role ${role}`);
    const changed = await snapshotDatabase(workspace.database);
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json']);
    expect(result.exitCode).to.equal(6);
    expect(result.json.error.code).to.equal('E_RESTORE_FAILED');
    expect(result.json.error.message).to.match(/role .* does not exist/);
    await expectUntouched(changed);
  });

  it('leaves the database as it was when psql is killed midway', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {
      psql: versionAware('psql', 'head -c 20000 | psql "$@" >/dev/null 2>&1; kill -KILL $$'),
    });
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode).to.equal(6);
    expect(result.json.error.message).to.match(/psql killed by SIGKILL/);
    expect(result.json.error.details.stage).to.equal('load');
    await expectUntouched(changed);
  });

  it('says how to install psql when it is missing, before touching the database', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {PG_BIN_DIR: '/nonexistent/bin'});
    expect(result.exitCode).to.equal(4);
    expect(result.json.error.code).to.equal('E_TOOL_MISSING');
    expect(result.json.error.message).to.include("psql '/nonexistent/bin/psql'");
    await expectUntouched(changed);
  });

  it('is cancelled by Ctrl-C during the countdown, with exit 130, changing nothing', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    const child = spawnCli(['backup', 'restore', name], {cwd: workspace.cwd, env: workspace.env});
    await stderrReaches(child, 'press Ctrl-C to cancel');
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).to.equal(130);
    expect(result.stderr).to.match(/E_CANCELLED/);
    await expectUntouched(changed);
  });

  it('is cancelled by SIGINT while loading, dropping the scratch database', async function () {
    const name = await workspace.backup();
    const changed = await changeDatabase();
    // The real psql loads everything, then the load stays open long enough to be interrupted.
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {psql: versionAware('psql', 'psql "$@"; exec sleep 30')});
    const child = spawnCli(['backup', 'restore', name, '--yes'], {cwd: workspace.cwd, env: {...workspace.env, PG_BIN_DIR: binDir}});
    await stderrReaches(child, 'load: started');
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode, result.stderr).to.equal(130);
    await expectUntouched(changed);
    expect(JSON.stringify(await readFile(path.join(workspace.backupDir, `${name}.meta.json`), 'utf8'))).to.include(name);
  });
});
