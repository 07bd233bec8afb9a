import {expect} from 'chai';
import {execa} from 'execa';
import {readFile, utimes, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {LocalDirectoryStorage} from '../../../plugins/storage-local/src/local-directory-storage.js';
import {resolveSettings} from '../../../src/core/config/index.js';
import {ProgressEvents} from '../../../src/core/events/index.js';
import {cleanupBackups, documentAuthenticatorFor} from '../../../src/core/services/index.js';
import {baseEnvironment, CLI} from '../../helpers/cli.js';
import {databaseNames, seedSampleData, snapshotDatabase, sql} from '../../helpers/database.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {wrapStorage} from '../../helpers/storage.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

/** Guards that once had no test: each test here fails when its guard is removed. */
describe('guards', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 50);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('fsyncs the data file before publishing it and the directory after, then does the same for the metadata', async function () {
    const log = path.join(workspace.cwd, 'strace.log');
    const result = await execa('strace', ['-f', '-y', '-e', 'trace=fsync,fdatasync,link,linkat,rename,renameat,renameat2,unlink,unlinkat', '-o', log, process.execPath, CLI, 'backup', 'run', '--json'], {
      cwd: workspace.cwd,
      env: {...baseEnvironment(), ...workspace.env} as Record<string, string>,
      extendEnv: false,
      reject: false,
    });
    expect(result.exitCode, result.stdout).to.equal(0);
    const name = JSON.parse(result.stdout).result.name as string;
    const calls = (await readFile(log, 'utf8')).split('\n').filter((line) => line.includes(workspace.backupDir) && !line.includes('resumed'));
    const dir = `<${workspace.backupDir}>)`;
    const at = (predicate: (line: string) => boolean, from = 0): number => {
      const index = calls.findIndex((line, position) => position >= from && predicate(line));
      expect(index, `a call after #${from} in:\n${calls.join('\n')}`).to.be.at.least(from);
      return index;
    };
    // Each publication is durable (the directory fsynced) before the next step: the metadata goes
    // only after the data file's name is on disk, the run marker only after the metadata's.
    const steps = [name, `${name}.meta.json`];
    let from = 0;
    for (const [index, key] of steps.entries()) {
      const stagedSync = at((line) => new RegExp(`f(data)?sync\\(\\d+<${workspace.backupDir}/${key.replaceAll('.', '\\.')}\\.[0-9a-f]+\\.partial>`).test(line), from);
      const published = at((line) => /\blink(at)?\(/.test(line) && line.includes(`"${workspace.backupDir}/${key}"`), stagedSync + 1);
      const directorySynced = at((line) => line.includes('fsync(') && line.includes(dir), published + 1);
      const next =
        index + 1 < steps.length
          ? at((line) => /\blink(at)?\(/.test(line) && line.includes(`"${workspace.backupDir}/${steps[index + 1]}"`), published + 1)
          : at((line) => /\bunlink(at)?\(/.test(line) && line.includes(`${workspace.backupDir}/${name}.pending"`), published + 1);
      expect(directorySynced, `the directory is fsynced after publishing '${key}' and before the next step`).to.be.lessThan(next);
      from = published + 1;
    }
  });

  it('counts a backup as made only when pg_dump exited 0, even after a complete-looking dump', async function () {
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'pg_dump "$@"\nexit 1')});
    const result = await workspace.run(['backup', 'run', '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode).to.equal(5);
    expect(result.json.error.message).to.include('pg_dump exited with status 1');
    expect((await workspace.backupFiles()).filter((file) => file.startsWith('backup_'))).to.deep.equal([]);
  });

  it('does not swap when psql read the whole stream and then exited non-zero', async function () {
    const name = await workspace.backup();
    await sql(workspace.database, 'create table after_backup (id int)');
    const changed = await snapshotDatabase(workspace.database);
    const binDir = await fakeBinDir(path.join(workspace.cwd, 'bin'), {psql: versionAware('psql', 'cat > /dev/null\nexit 3')});
    const result = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {PG_BIN_DIR: binDir});
    expect(result.exitCode).to.equal(6);
    expect(result.json.error.message).to.include('psql exited with status 3');
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(changed);
    expect(await databaseNames(workspace.database)).to.deep.equal([workspace.database]);
  });

  it('cleanup reads backups back without holding the storage lock, so backups go on meanwhile', async function () {
    await workspace.backup();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const newer = await workspace.backup();
    const settings = resolveSettings({process: {...workspace.env, BACKUP_RETENTION_HOURLY: '1'}, dotenv: {}, cwd: workspace.cwd});
    const local = await LocalDirectoryStorage.open(workspace.backupDir);
    const lockHeldDuringReads: boolean[] = [];
    const watching = wrapStorage(local, {
      async get(key, options) {
        if (key === newer) lockHeldDuringReads.push((await local.stat('synapse-backup.lock')) !== undefined);
        return local.get(key, options);
      },
    });
    const result = await cleanupBackups({storage: watching, policy: settings.retention, events: new ProgressEvents(), authenticator: documentAuthenticatorFor(settings.encryption), database: settings.database.database}, {dryRun: false});
    expect(result.verified).to.deep.equal([{name: newer, status: 'intact'}]);
    expect(result.removedKeys).to.have.length(2);
    expect(lockHeldDuringReads).to.deep.equal([false]);
  });

  it('cleanup believes a read-back made before the lock only for a file that has not changed since', async function () {
    const older = await workspace.backup();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const newer = await workspace.backup();
    const settings = resolveSettings({process: {...workspace.env, BACKUP_RETENTION_HOURLY: '1'}, dotenv: {}, cwd: workspace.cwd});
    const local = await LocalDirectoryStorage.open(workspace.backupDir);
    const file = path.join(workspace.backupDir, newer);
    // The newer file is damaged after it was read back intact, just as cleanup takes the lock.
    const damaging = wrapStorage(local, {
      async put(key, body, options) {
        if (key === 'synapse-backup.lock') {
          const bytes = await readFile(file);
          bytes[200] = bytes[200]! ^ 0xff;
          await writeFile(file, bytes);
          await utimes(file, new Date(), new Date(Date.now() + 60_000));
        }
        return local.put(key, body, options);
      },
    });
    const result = await cleanupBackups({storage: damaging, policy: settings.retention, events: new ProgressEvents(), authenticator: documentAuthenticatorFor(settings.encryption), database: settings.database.database}, {dryRun: false});
    expect(result.removedKeys).to.deep.equal([]);
    expect(result.verified.find((outcome) => outcome.name === newer)).to.include({status: 'damaged'});
    expect(await workspace.backupFiles()).to.include(older);
  });

  it('cleanup marks a backup, then deletes its metadata before its data file', async function () {
    const older = await workspace.backup();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await workspace.backup();
    const settings = resolveSettings({process: {...workspace.env, BACKUP_RETENTION_HOURLY: '1'}, dotenv: {}, cwd: workspace.cwd});
    const local = await LocalDirectoryStorage.open(workspace.backupDir);
    const deleted: string[] = [];
    const recording = wrapStorage(local, {
      put: (key, body, options) => (deleted.push(`put ${key}`), local.put(key, body, options)),
      delete: (key) => (deleted.push(key), local.delete(key)),
    });
    await cleanupBackups({storage: recording, policy: settings.retention, events: new ProgressEvents(), authenticator: documentAuthenticatorFor(settings.encryption), database: settings.database.database}, {dryRun: false});
    // The run marker first, so that a removal cut short is finished by the next cleanup; it goes last.
    expect(deleted.filter((key) => key.replace(/^put /, '').startsWith(older))).to.deep.equal([`put ${older}.pending`, `${older}.meta.json`, older, `${older}.pending`]);
  });
});
