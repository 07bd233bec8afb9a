import {expect} from 'chai';
import {randomBytes} from 'node:crypto';
import {mkdir, readdir, readFile, rm, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT, spawnCli} from '../../helpers/cli.js';
import {seedSampleData, snapshotDatabase, sql} from '../../helpers/database.js';
import {mountTmpfs, unmount} from '../../helpers/mounts.js';
import {startHttpReceiver} from '../../helpers/receivers.js';
import {startS3Server, type S3Endpoint} from '../../helpers/s3fs-mount.js';
import {startSmbShare, type SmbShare} from '../../helpers/smb-share.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

const STALLING = path.join(PROJECT_ROOT, 'test', 'fixtures', 'plugins', 'stalling-storage');

/** The files of one location's directory that are backups or their metadata (no journal, no lock). */
async function backupFilesIn(directory: string): Promise<string[]> {
  try {
    return (await readdir(directory)).filter((file) => file.startsWith('backup_')).sort();
  } catch {
    return [];
  }
}

function locationsOf(json: {result?: {locations?: unknown}; error?: {details?: {locations?: unknown}}}): Array<{location: string; outcome: string; error?: {message: string}}> {
  return (json.result?.locations ?? json.error?.details?.locations) as Array<{location: string; outcome: string; error?: {message: string}}>;
}

describe('replication to several locations (BACKUP_LOCATIONS)', function () {
  this.timeout(120_000);
  let workspace: Workspace;
  let primary: string;
  let second: string;

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 100);
    primary = path.join(workspace.cwd, 'primary');
    second = path.join(workspace.cwd, 'second');
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  const two = () => ({BACKUP_LOCATIONS: `local:${primary},second=local:${second}`});

  it('writes one dump, and the same bytes and metadata reach every location, each restorable alone', async function () {
    const run = await workspace.run(['backup', 'run', '--json'], two());
    expect(run.exitCode, run.stdout + run.stderr).to.equal(0);
    const name = run.json.result.name as string;
    expect(locationsOf(run.json)).to.deep.equal([
      {location: 'primary', outcome: 'written'},
      {location: 'second', outcome: 'copied'},
    ]);
    expect(await backupFilesIn(second)).to.deep.equal([name, `${name}.meta.json`]);
    for (const file of [name, `${name}.meta.json`]) expect((await readFile(path.join(second, file))).equals(await readFile(path.join(primary, file))), file).to.equal(true);
    const expected = await snapshotDatabase(workspace.database);
    await sql(workspace.database, 'delete from orders');
    // The second location alone, as the only storage: a complete backup storage.
    const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], {BACKUP_DIR: second});
    expect(restored.exitCode, restored.stdout + restored.stderr).to.equal(0);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(expected);
  });

  it('lists per backup the locations that hold a good copy, and what the others lack', async function () {
    const name = await workspace.backup(two());
    await rm(path.join(second, `${name}.meta.json`));
    const listed = await workspace.run(['backup', 'list', '--json'], {BACKUP_LOCATIONS: `local:${primary},second=local:${second},third=local:${path.join(workspace.cwd, 'third')}`});
    expect(listed.exitCode, listed.stdout + listed.stderr).to.equal(0);
    const [backup] = listed.json.result.backups;
    expect(backup).to.include({name, health: 'good'});
    expect(backup.locations.map((copy: {location: string; state: string}) => [copy.location, copy.state])).to.deep.equal([
      ['primary', 'good'],
      ['second', 'missing'],
      ['third', 'unreadable'],
    ]);
    const text = await workspace.run(['backup', 'list'], two());
    expect(text.stdout).to.include('good at primary; second: missing');
  });

  it('copies with sync what a location lacks, checks what arrived, and never overwrites a copy that differs unless it fails its checksum and --repair is given', async function () {
    const name = await workspace.backup(two());
    const original = await readFile(path.join(primary, name));
    await rm(path.join(second, name));
    await rm(path.join(second, `${name}.meta.json`));
    const dry = await workspace.run(['backup', 'sync', '--dry-run', '--json'], two());
    expect(dry.exitCode, dry.stdout + dry.stderr).to.equal(0);
    expect(dry.json.result.locations[1].copied).to.deep.equal([{backup: name, from: 'primary', outcome: 'copied', bytes: original.length}]);
    expect(await backupFilesIn(second)).to.deep.equal([]);
    const synced = await workspace.run(['backup', 'sync', '--json'], two());
    expect(synced.exitCode, synced.stdout + synced.stderr).to.equal(0);
    expect((await readFile(path.join(second, name))).equals(original)).to.equal(true);

    // Damaged in the same size: the metadata is the same, the checksum is not. It looks good until
    // read: a verify of that location finds it, and from then on sync reports it.
    const damaged = Buffer.from(original);
    damaged[damaged.length - 20]! ^= 0xff;
    await writeFile(path.join(second, name), damaged);
    const unnoticed = await workspace.run(['backup', 'sync', '--json'], two());
    expect(unnoticed.json.result.locations[1]).to.include({present: 1});
    expect((await workspace.run(['backup', 'verify', name, '--json'], {BACKUP_DIR: second})).exitCode).to.equal(13);
    const refused = await workspace.run(['backup', 'sync', '--json'], two());
    expect(refused.exitCode).to.equal(15);
    expect(refused.json.error.code).to.equal('E_REPLICATION');
    expect(refused.json.error.message).to.include('fails its checksum').and.include('--repair');
    expect((await readFile(path.join(second, name))).equals(damaged), 'left as it was').to.equal(true);
    const repaired = await workspace.run(['backup', 'sync', '--repair', '--json'], two());
    expect(repaired.exitCode, repaired.stdout + repaired.stderr).to.equal(0);
    expect(repaired.json.result.locations[1].copied[0]).to.include({backup: name, outcome: 'repaired'});
    expect((await readFile(path.join(second, name))).equals(original)).to.equal(true);

    // --repair reads every copy: one damaged in its own size, unverified, is found and replaced too.
    await writeFile(path.join(second, name), damaged);
    const reread = await workspace.run(['backup', 'sync', '--repair', '--json'], two());
    expect(reread.exitCode, reread.stdout + reread.stderr).to.equal(0);
    expect(reread.json.result.locations[1].copied[0]).to.include({backup: name, outcome: 'repaired'});
    expect((await readFile(path.join(second, name))).equals(original)).to.equal(true);
    const whole = await workspace.run(['backup', 'sync', '--repair', '--json'], two());
    expect(whole.json.result.locations[1]).to.include({present: 1}).and.have.property('copied').that.deep.equals([]);
    // The failed verification was of the copy that is gone: the new one is good.
    const listed = await workspace.run(['backup', 'list', '--json'], two());
    expect(listed.json.result.backups[0].locations.map((copy: {state: string}) => copy.state)).to.deep.equal(['good', 'good']);
  });

  it('never copies a source that fails its checksum as it streams: the copy fails naming the source, and nothing is left at the target', async function () {
    const name = await workspace.backup(two());
    await rm(path.join(second, name));
    await rm(path.join(second, `${name}.meta.json`));
    // Damaged in its own size at the source, unverified: it looks good there until read.
    const bytes = await readFile(path.join(primary, name));
    bytes[10]! ^= 0x01;
    await writeFile(path.join(primary, name), bytes);
    const synced = await workspace.run(['backup', 'sync', '--json'], two());
    expect(synced.exitCode).to.equal(15);
    expect(synced.json.error.message).to.include("from location 'primary': its data there does not match the checksum its metadata records");
    expect(await backupFilesIn(second)).to.deep.equal([]);
  });

  it('copies from a source only what is still authentic when it is read for the copy', async function () {
    const name = await workspace.backup(two());
    const {LocalDirectoryStorage} = await import('../../../plugins/storage-local/src/local-directory-storage.js');
    const {copySourceAt} = await import('../../../src/core/replication/index.js');
    const {documentAuthenticatorFor} = await import('../../../src/core/services/index.js');
    const {resolveSettings} = await import('../../../src/core/config/index.js');
    const settings = resolveSettings({process: workspace.env, dotenv: {}, cwd: workspace.cwd}, {uses: []});
    const authenticator = documentAuthenticatorFor(settings.encryption);
    const location = {name: 'primary', storage: await LocalDirectoryStorage.open(primary)};
    const sha256 = JSON.parse(await readFile(path.join(primary, `${name}.meta.json`), 'utf8')).checksums.stored;
    expect((await copySourceAt(location, name, authenticator, sha256)).metadata.backupName).to.equal(name);
    // Changed after the catalog judged it: a planted document is never copied on that earlier word.
    const metadata = JSON.parse(await readFile(path.join(primary, `${name}.meta.json`), 'utf8'));
    metadata.database.name = 'planted';
    await writeFile(path.join(primary, `${name}.meta.json`), JSON.stringify(metadata));
    const failure = await copySourceAt(location, name, authenticator, sha256).catch((error: unknown) => error);
    expect((failure as {code?: string}).code).to.equal('E_NOT_AUTHENTIC');
  });

  it('never replaces a copy whose metadata differs (planted), even with --repair, and restore passes over it to a good copy, saying so', async function () {
    const name = await workspace.backup(two());
    const expected = await snapshotDatabase(workspace.database);
    // Someone with write access to the primary replaces the backup's metadata with one of theirs.
    const metadata = JSON.parse(await readFile(path.join(primary, `${name}.meta.json`), 'utf8'));
    metadata.database.name = 'planted';
    await writeFile(path.join(primary, `${name}.meta.json`), JSON.stringify(metadata));
    const sync = await workspace.run(['backup', 'sync', '--repair', '--json'], two());
    expect(sync.exitCode).to.equal(15);
    expect(sync.json.error.message).to.include("'primary'").and.include('metadata differs');
    expect(JSON.parse(await readFile(path.join(primary, `${name}.meta.json`), 'utf8')).database.name).to.equal('planted');

    await sql(workspace.database, 'delete from orders');
    const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], two());
    expect(restored.exitCode, restored.stdout + restored.stderr).to.equal(0);
    expect(restored.json.result).to.include({location: 'second'});
    expect(restored.json.result.skippedLocations[0]).to.include({location: 'primary', code: 'E_NOT_AUTHENTIC'});
    expect(restored.json.warnings.join('\n')).to.include("location 'primary' cannot serve").and.include("trying location 'second'");
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(expected);
  });

  it('restores from the next location when the first copy is damaged or missing, and fails naming every location when none serves', async function () {
    const name = await workspace.backup(two());
    const expected = await snapshotDatabase(workspace.database);
    const bytes = await readFile(path.join(primary, name));
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(path.join(primary, name), bytes);
    await sql(workspace.database, 'delete from orders');
    const changed = await snapshotDatabase(workspace.database);
    const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], two());
    expect(restored.exitCode, restored.stdout + restored.stderr).to.equal(0);
    expect(restored.json.result.skippedLocations[0]).to.include({location: 'primary', code: 'E_INTEGRITY'});
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(expected);

    await sql(workspace.database, 'delete from orders');
    await rm(path.join(second, name));
    const none = await workspace.run(['backup', 'restore', name, '--yes', '--json'], two());
    expect(none.exitCode).to.equal(13);
    expect(none.json.error.message).to.match(/from any location: 'primary': .*; 'second': /);
    expect(await snapshotDatabase(workspace.database)).to.deep.equal(changed);
  });

  it('verify and test-restore read the next location when a copy fails, say so, and record the failure where it is', async function () {
    const name = await workspace.backup(two());
    const bytes = await readFile(path.join(primary, name));
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(path.join(primary, name), bytes);
    const verified = await workspace.run(['backup', 'verify', '--latest', '--json'], two());
    expect(verified.exitCode, verified.stdout + verified.stderr).to.equal(0);
    expect(verified.json.result.backups[0]).to.include({backupName: name, location: 'second', verified: true});
    expect(verified.json.result.backups[0].skippedLocations[0]).to.include({location: 'primary', code: 'E_INTEGRITY'});
    expect(verified.json.warnings.join('\n')).to.include(`the copy of '${name}' at location 'primary' failed verification`);
    // The damaged copy is now known as such where it is.
    const listed = await workspace.run(['backup', 'list', '--json'], two());
    expect(listed.json.result.backups[0].locations.map((copy: {state: string}) => copy.state)).to.deep.equal(['damaged', 'good']);

    // The copy at the primary gone: test-restore loads the second's.
    await rm(path.join(primary, name));
    const tested = await workspace.run(['backup', 'test-restore', name, '--json'], two());
    expect(tested.exitCode, tested.stdout + tested.stderr).to.equal(0);
    expect(tested.json.result).to.include({location: 'second'});
    expect(tested.json.result.skippedLocations[0]).to.include({location: 'primary'});
  });

  it('a full secondary: the backup stays on the primary, the run exits 15 naming the location, replication.failed is sent and the journal records it', async function () {
    await mkdir(second);
    await mountTmpfs(second, {sizeBytes: 64 * 1024});
    const receiver = await startHttpReceiver();
    try {
      // More than the secondary holds: random data does not compress.
      await sql(workspace.database, `create table filler as select md5(g::text) || md5((g * 7)::text) as a from generate_series(1, 20000) g`);
      const run = await workspace.run(['backup', 'run', '--json'], {...two(), NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_WEBHOOK_EVENTS: '*'});
      expect(run.exitCode, run.stdout + run.stderr).to.equal(15);
      expect(run.json.error.code).to.equal('E_REPLICATION');
      expect(run.json.error.message).to.match(/is at 'primary', but not at 'second' \(.*no space left/);
      const locations = locationsOf(run.json);
      expect(locations.map((outcome) => [outcome.location, outcome.outcome])).to.deep.equal([
        ['primary', 'written'],
        ['second', 'failed'],
      ]);
      const name = run.json.error.details.backupName as string;
      expect(await backupFilesIn(primary)).to.deep.equal([name, `${name}.meta.json`]);
      // Nothing at the secondary looks good: at most the marker of the copy that did not finish.
      const listed = await workspace.run(['backup', 'list', '--json'], two());
      expect(listed.json.result.backups[0].locations.map((copy: {state: string}) => copy.state)).to.deep.equal(['good', 'missing']);
      const events = receiver.requests.map((request) => JSON.parse(request.body).event);
      expect(events).to.include.members(['backup.succeeded', 'replication.failed']);
      expect(events).not.to.include('backup.failed');
      const journal = (await readdir(primary)).filter((file) => file.startsWith('synapse-backup.journal.'));
      const entries = await Promise.all(journal.map(async (file) => JSON.parse(await readFile(path.join(primary, file), 'utf8'))));
      expect(entries.find((entry) => entry.operation === 'backup')).to.deep.include({outcome: 'failed', error: {code: 'E_REPLICATION', message: run.json.error.message}});
    } finally {
      await receiver.close();
      await unmount(second);
    }
  });

  it('a full primary with a healthy secondary: the backup is kept on the secondary, and the run fails naming the primary', async function () {
    await mkdir(primary);
    await mountTmpfs(primary, {sizeBytes: 64 * 1024});
    try {
      await sql(workspace.database, `create table filler as select md5(g::text) || md5((g * 7)::text) as a from generate_series(1, 20000) g`);
      const run = await workspace.run(['backup', 'run', '--json'], two());
      expect(run.exitCode, run.stdout + run.stderr).to.equal(7);
      expect(run.json.error.message).to.match(/^the primary location failed \(.*no space left.*\); backup '(backup_hourly_\d{8}_\d{6}\.sql\.gz\.enc)' was kept at location 'second'$/);
      const name = run.json.error.details.backupName as string;
      expect(await backupFilesIn(second)).to.deep.equal([name, `${name}.meta.json`]);
      expect(locationsOf(run.json).map((outcome) => [outcome.location, outcome.outcome])).to.deep.equal([
        ['primary', 'failed'],
        ['second', 'written'],
      ]);
      const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], two());
      expect(restored.exitCode, restored.stdout + restored.stderr).to.equal(0);
      expect(restored.json.result).to.include({location: 'second'});
    } finally {
      await unmount(primary);
    }
  });

  it('runs retention per location by its own policy, and never removes the only good copy of a backup another location still wants', async function () {
    const env = {...two(), BACKUP_RETENTION_HOURLY: '1', BACKUP_RETENTION_HOURLY_SECOND: '5'};
    const first = await workspace.backup(two());
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // The second location unreachable for one run: a file where its directory should be.
    await rm(second, {recursive: true});
    await writeFile(second, 'not a directory');
    const missed = await workspace.run(['backup', 'run', '--json'], two());
    expect(missed.exitCode).to.equal(15);
    const onlyAtPrimary = missed.json.error.details.backupName as string;
    await rm(second);
    await mkdir(second);
    const sync = await workspace.run(['backup', 'sync', '--json'], two());
    expect(sync.exitCode, sync.stdout + sync.stderr).to.equal(0);
    // Copy the first back in by sync, then lose the newer one there again.
    await rm(path.join(second, onlyAtPrimary));
    await rm(path.join(second, `${onlyAtPrimary}.meta.json`));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const newest = await workspace.backup(two());

    const cleanup = await workspace.run(['backup', 'cleanup', '--json'], env);
    expect(cleanup.exitCode, cleanup.stdout + cleanup.stderr).to.equal(0);
    const at = (location: string, name: string) => cleanup.json.result.decisions.find((decision: {location: string; name: string}) => decision.location === location && decision.name === name);
    expect(at('primary', newest)).to.include({action: 'keep'});
    expect(at('primary', first)).to.include({action: 'remove'});
    expect(at('primary', onlyAtPrimary)).to.include({action: 'keep'});
    expect(at('primary', onlyAtPrimary).reason).to.include("the only good copy: 'second' has it missing and keeps it by its retention");
    expect(at('second', first)).to.include({action: 'keep'});
    expect(await backupFilesIn(primary)).to.include(onlyAtPrimary).and.not.include(first);

    // Once the second location has it, the primary's policy has its way.
    expect((await workspace.run(['backup', 'sync', '--json'], env)).exitCode).to.equal(0);
    const again = await workspace.run(['backup', 'cleanup', '--json'], env);
    expect(again.json.result.decisions.find((decision: {location: string; name: string}) => decision.location === 'primary' && decision.name === onlyAtPrimary)).to.include({action: 'remove'});
    expect(await backupFilesIn(second)).to.include.members([first, onlyAtPrimary, newest]);

    // The only good copy of a backup no other location wants any more (by its policy: keep one) goes.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const unwanted = await workspace.backup(two());
    await rm(path.join(second, unwanted));
    await rm(path.join(second, `${unwanted}.meta.json`));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await workspace.backup(two());
    const last = await workspace.run(['backup', 'cleanup', '--json'], {...two(), BACKUP_RETENTION_HOURLY: '1'});
    const decision = last.json.result.decisions.find((candidate: {location: string; name: string}) => candidate.location === 'primary' && candidate.name === unwanted);
    expect(decision, JSON.stringify(decision)).to.include({action: 'remove'});
  });

  it('status shows each location; one behind by more than one backup is a warning and an alert, one it cannot read is never OK', async function () {
    const first = await workspace.backup(two());
    const env = {...two(), BACKUP_ALERT_MAX_AGE_HOURLY: '1h'};
    const ok = await workspace.run(['status', '--json'], env);
    expect(ok.exitCode, ok.stdout + ok.stderr).to.equal(0);
    expect(ok.json.result.locations.map((location: {name: string; readable: boolean; missing: number}) => [location.name, location.readable, location.missing])).to.deep.equal([
      ['primary', true, 0],
      ['second', true, 0],
    ]);
    // Two more backups that the second location never got.
    for (let run = 0; run < 2; run++) {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await workspace.backup({BACKUP_DIR: primary});
    }
    const receiver = await startHttpReceiver();
    try {
      const behind = await workspace.run(['status', '--notify', '--json'], {...env, NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_WEBHOOK_EVENTS: 'alert.*', SYNAPSE_BACKUP_STATE_DIR: path.join(workspace.cwd, 'state')});
      expect(behind.exitCode, behind.stdout + behind.stderr).to.equal(1);
      const second = behind.json.result.locations.find((location: {name: string}) => location.name === 'second');
      expect(second.types[0]).to.include({type: 'hourly', newest: first, behind: 2});
      expect(behind.json.result.problems.map((problem: {id: string}) => problem.id)).to.deep.equal([`replication_behind:second:${workspace.database}:hourly`]);
      expect(receiver.requests.map((request) => JSON.parse(request.body).event)).to.deep.equal(['alert.replication_behind']);
    } finally {
      await receiver.close();
    }
    const metrics = await workspace.run(['status', '--format', 'prometheus'], env);
    expect(metrics.stdout).to.include(`synapse_backup_location_behind_backups{location="second",database="${workspace.database}",type="hourly"} 2`);
    expect(metrics.stdout).to.include('synapse_backup_location_up{location="primary"} 1');

    await rm(second, {recursive: true});
    const blind = await workspace.run(['status', '--json'], env);
    expect(blind.exitCode).to.equal(3);
    expect(blind.json.result.problems.map((problem: {id: string}) => problem.id)).to.include('location_unreadable:second');
    const text = await workspace.run(['status'], env);
    expect(text.stdout).to.match(/^UNKNOWN: /).and.include('UNREADABLE');
  });

  it('a primary that cannot be opened: the backup goes to the next location, and the run fails naming the primary', async function () {
    // A file where the primary's directory should be: it cannot be opened, let alone created.
    await writeFile(primary, 'not a directory');
    const run = await workspace.run(['backup', 'run', '--json'], two());
    expect(run.exitCode, run.stdout + run.stderr).to.equal(7);
    expect(run.json.error.message).to.match(/^the primary location failed \(.*\); backup '(backup_hourly_\d{8}_\d{6}\.sql\.gz\.enc)' was kept at location 'second'$/);
    const name = run.json.error.details.backupName as string;
    expect(await backupFilesIn(second)).to.deep.equal([name, `${name}.meta.json`]);
    expect(locationsOf(run.json).map((outcome) => [outcome.location, outcome.outcome])).to.deep.equal([
      ['primary', 'failed'],
      ['second', 'written'],
    ]);
  });

  describe('killed midway', function () {
    let dataDir: string;
    beforeEach(async function () {
      dataDir = path.join(workspace.cwd, 'data');
      const link = await workspace.run(['plugins', 'link', '--no-install', STALLING], {SYNAPSE_BACKUP_DATA_DIR: dataDir});
      expect(link.exitCode, link.stderr).to.equal(0);
    });

    /** Starts `args` with the second location stalling at the end of each backup upload; kills it -9 once the copy has begun. */
    async function killDuringCopy(args: string[]): Promise<void> {
      const env = {...workspace.env, SYNAPSE_BACKUP_DATA_DIR: dataDir, BACKUP_LOCATIONS: `local:${primary},second=stalling:${second}`, STALLING_STORAGE_AT: 'put-end'};
      const child = spawnCli(args, {cwd: workspace.cwd, env});
      for (let waited = 0; waited < 30_000; waited += 100) {
        if ((await backupFilesIn(second)).some((file) => file.endsWith('.pending'))) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      child.kill('SIGKILL');
      await child.catch(() => {});
    }

    it('a replicated run killed during its copy leaves nothing that looks good there, and sync then completes it', async function () {
      await killDuringCopy(['backup', 'run', '--json']);
      const env = {...two(), SYNAPSE_BACKUP_DATA_DIR: dataDir};
      const listed = await workspace.run(['backup', 'list', '--json'], env);
      expect(listed.json.result.backups.map((backup: {locations: Array<{state: string}>}) => backup.locations.map((copy) => copy.state))).to.deep.equal([['good', 'missing']]);
      // The lock the killed run held at the second location is taken over (its PID is dead).
      const synced = await workspace.run(['backup', 'sync', '--json'], env);
      expect(synced.exitCode, synced.stdout + synced.stderr).to.equal(0);
      const after = await workspace.run(['backup', 'list', '--json'], env);
      expect(after.json.result.backups[0].locations.map((copy: {state: string}) => copy.state)).to.deep.equal(['good', 'good']);
    });

    it('a sync killed during its copy leaves nothing that looks good, and the next sync completes it', async function () {
      const name = await workspace.backup({BACKUP_DIR: primary});
      await killDuringCopy(['backup', 'sync', '--json']);
      const env = {...two(), SYNAPSE_BACKUP_DATA_DIR: dataDir};
      const listed = await workspace.run(['backup', 'list', '--json'], env);
      expect(listed.json.result.backups[0].locations.map((copy: {state: string}) => copy.state)).to.deep.equal(['good', 'missing']);
      const synced = await workspace.run(['backup', 'sync', '--json'], env);
      expect(synced.exitCode, synced.stdout + synced.stderr).to.equal(0);
      expect(await backupFilesIn(second)).to.deep.equal([name, `${name}.meta.json`]);
    });
  });
});

describe('replication to a real S3 server and a real mount', function () {
  this.timeout(180_000);
  let server: S3Endpoint;
  let share: SmbShare;
  let workspace: Workspace;

  before(async function () {
    this.timeout(180_000);
    [server, share] = await Promise.all([startS3Server('radosgw'), startSmbShare()]);
  });

  after(async function () {
    await Promise.all([server?.stop(), share?.stop()]);
  });

  beforeEach(async function () {
    workspace = await createWorkspace();
    await seedSampleData(workspace.database, 100);
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  function threeLocations(prefix: string, s3Endpoint = server.endpoint) {
    const nas = path.join(share.mountPoint, `nas-${prefix}`);
    return {
      nas,
      env: {
        BACKUP_LOCATIONS: `local:${path.join(workspace.cwd, 'local')},offsite=s3://${server.bucket}/${prefix}/?endpoint=${encodeURIComponent(s3Endpoint)}&force-path-style=true,nas=mount:${nas}`,
        AWS_ACCESS_KEY_ID: server.accessKey,
        AWS_SECRET_ACCESS_KEY: server.secretKey,
      },
    };
  }

  it('reaches a local directory, radosgw and an SMB share; each alone restores the same data', async function () {
    const prefix = `rep-${randomBytes(4).toString('hex')}`;
    const {nas, env} = threeLocations(prefix);
    const run = await workspace.run(['backup', 'run', '--json'], env);
    expect(run.exitCode, run.stdout + run.stderr).to.equal(0);
    expect(locationsOf(run.json).map((outcome) => [outcome.location, outcome.outcome])).to.deep.equal([
      ['primary', 'written'],
      ['offsite', 'copied'],
      ['nas', 'copied'],
    ]);
    const name = run.json.result.name as string;
    const expected = await snapshotDatabase(workspace.database);
    const alone = [
      {BACKUP_STORAGE: 's3', BACKUP_S3_BUCKET: server.bucket, BACKUP_S3_PREFIX: `${prefix}/`, BACKUP_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: server.accessKey, AWS_SECRET_ACCESS_KEY: server.secretKey},
      {BACKUP_STORAGE: 'mount', BACKUP_DIR: nas},
    ];
    for (const only of alone) {
      await sql(workspace.database, 'delete from orders');
      const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], only);
      expect(restored.exitCode, restored.stdout + restored.stderr).to.equal(0);
      expect(await snapshotDatabase(workspace.database)).to.deep.equal(expected);
    }
  });

  it('an S3 secondary whose endpoint is down: the other locations hold the backup, the run exits 15 naming it, and sync copies it once it is back', async function () {
    const prefix = `rep-${randomBytes(4).toString('hex')}`;
    const down = threeLocations(prefix, 'http://127.0.0.1:9');
    const run = await workspace.run(['backup', 'run', '--json'], {...down.env, BACKUP_S3_MAX_ATTEMPTS: '1'});
    expect(run.exitCode, run.stdout + run.stderr).to.equal(15);
    expect(locationsOf(run.json).map((outcome) => [outcome.location, outcome.outcome])).to.deep.equal([
      ['primary', 'written'],
      ['offsite', 'failed'],
      ['nas', 'copied'],
    ]);
    expect(locationsOf(run.json)[1]!.error!.message).to.include('ECONNREFUSED');
    expect(run.json.error.message).not.to.include(server.secretKey);
    const back = threeLocations(prefix);
    const synced = await workspace.run(['backup', 'sync', '--location', 'offsite', '--json'], back.env);
    expect(synced.exitCode, synced.stdout + synced.stderr).to.equal(0);
    expect(synced.json.result.locations.map((location: {location: string}) => location.location)).to.deep.equal(['offsite']);
    expect(synced.json.result.locations[0].copied).to.have.length(1);
    const listed = await workspace.run(['backup', 'list', '--json'], back.env);
    expect(listed.json.result.backups[0].locations.map((copy: {state: string}) => copy.state)).to.deep.equal(['good', 'good', 'good']);
  });

  it('an S3 secondary whose bucket does not exist: named as such, and the primary keeps the backup', async function () {
    const env = {
      BACKUP_LOCATIONS: `local:${path.join(workspace.cwd, 'local')},offsite=s3://no-such-bucket-here/pg/?endpoint=${encodeURIComponent(server.endpoint)}&force-path-style=true`,
      AWS_ACCESS_KEY_ID: server.accessKey,
      AWS_SECRET_ACCESS_KEY: server.secretKey,
    };
    const run = await workspace.run(['backup', 'run', '--json'], env);
    expect(run.exitCode, run.stdout + run.stderr).to.equal(15);
    expect(locationsOf(run.json).map((outcome) => [outcome.location, outcome.outcome])).to.deep.equal([
      ['primary', 'written'],
      ['offsite', 'failed'],
    ]);
    expect(locationsOf(run.json)[1]!.error!.message).to.include("the bucket 'no-such-bucket-here' does not exist");
    expect(await backupFilesIn(path.join(workspace.cwd, 'local'))).to.have.length(2);
  });

  it('reads an S3 location with its own credentials profile, never the environment keys of another', async function () {
    const prefix = `rep-${randomBytes(4).toString('hex')}`;
    const credentials = path.join(workspace.cwd, 'aws-credentials');
    await writeFile(credentials, `[offsite]\naws_access_key_id = ${server.accessKey}\naws_secret_access_key = ${server.secretKey}\n`, {mode: 0o600});
    const locations = `local:${path.join(workspace.cwd, 'local')},offsite=s3://${server.bucket}/${prefix}/?endpoint=${encodeURIComponent(server.endpoint)}&force-path-style=true&profile=offsite`;
    // Wrong keys in the environment: a location with a profile must not use them.
    const env = {BACKUP_LOCATIONS: locations, AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_ACCESS_KEY_ID: 'AKIAWRONGWRONGWRONG0', AWS_SECRET_ACCESS_KEY: 'wrong-secret-wrong-secret-wrong-secret'};
    const run = await workspace.run(['backup', 'run', '--json'], env);
    expect(run.exitCode, run.stdout + run.stderr).to.equal(0);
    expect(locationsOf(run.json).map((outcome) => outcome.outcome)).to.deep.equal(['written', 'copied']);
  });
});
