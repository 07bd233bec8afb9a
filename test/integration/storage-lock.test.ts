import {expect} from 'chai';
import {execFileSync, spawn} from 'node:child_process';
import {once} from 'node:events';
import {readFile, writeFile} from 'node:fs/promises';
import {hostname} from 'node:os';
import path from 'node:path';
import {Readable} from 'node:stream';
import {setTimeout as sleep} from 'node:timers/promises';

import type {StorageBackend} from '../../src/contracts/storage.js';
import {LocalDirectoryStorage} from '../../plugins/storage-local/src/local-directory-storage.js';
import {isSynapseError} from '../../src/core/errors/index.js';
import {runExclusivelyOnThisHost} from '../../src/core/lock/host-mutex.js';
import {acquireStorageLock, type HeldLock} from '../../src/core/lock/index.js';
import {processStartTime} from '../../src/core/lock/process-identity.js';
import type {DeliveryReport} from '../../src/core/notify/index.js';
import {deliverAlerts} from '../../src/core/services/deliver-alerts.js';
import type {StatusReport} from '../../src/core/status/index.js';
import {wrapStorage} from '../helpers/storage.js';
import {makeTempDir} from '../helpers/temp.js';

/** The PID of a process that has exited, as a crashed run leaves it in its lock. */
function deadPid(): number {
  return Number(execFileSync('sh', ['-c', 'sh -c "echo \\$\\$"'], {encoding: 'utf8'}).trim());
}

/**
 * The same directory storage, but each delete lands a little later than the one before, as on a
 * network mount or S3 where runs started in the same second see their requests complete in any
 * order: a slow run's delete of the crashed run's lock then arrives after a faster run took over.
 */
function slowDeletes(storage: StorageBackend): StorageBackend {
  let deletes = 0;
  return wrapStorage(storage, {
    async delete(key, options) {
      await sleep(20 * deletes++);
      return storage.delete(key, options);
    },
  });
}

describe('storage lock', function () {
  let temp: Awaited<ReturnType<typeof makeTempDir>>;

  beforeEach(async function () {
    temp = await makeTempDir('synapse-lock-');
  });

  afterEach(async function () {
    await temp.remove();
  });

  it('lets exactly one of several runs on this host take over a lock left by a crashed run', async function () {
    const lockFile = path.join(temp.path, 'synapse-backup.lock');
    for (let round = 0; round < 20; round++) {
      const storage = slowDeletes(await LocalDirectoryStorage.open(temp.path));
      const crashed = {pid: deadPid(), hostname: hostname(), operation: 'backup run', acquiredAt: new Date().toISOString()};
      await writeFile(lockFile, JSON.stringify(crashed));
      // An hourly and a daily cron job firing in the same minute after the crash.
      const outcomes = await Promise.allSettled([acquireStorageLock(storage, 'backup run'), acquireStorageLock(storage, 'cleanup'), acquireStorageLock(storage, 'backup run')]);
      const winners = outcomes.filter((outcome): outcome is PromiseFulfilledResult<HeldLock> => outcome.status === 'fulfilled');
      expect(winners, `round ${round}`).to.have.length(1);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') expect(isSynapseError(outcome.reason) && outcome.reason.code, `round ${round}: ${String(outcome.reason)}`).to.equal('E_LOCKED');
      }
      expect(JSON.parse(await readFile(lockFile, 'utf8'))).to.deep.equal(winners[0]!.value.holder);
      await winners[0]!.value.release();
    }
  });

  it('releases only its own lock, even when another run takes the lock between the look and the delete', async function () {
    const lockFile = path.join(temp.path, 'synapse-backup.lock');
    const local = await LocalDirectoryStorage.open(temp.path);
    const theirs = {pid: process.pid, hostname: hostname(), operation: 'backup run (another)', acquiredAt: new Date().toISOString()};
    let racing = false;
    // Someone removed our lock by hand and another run took it: its put lands just before our delete.
    const storage = wrapStorage(local, {
      async delete(key, options) {
        if (racing && key === 'synapse-backup.lock') {
          racing = false;
          await local.delete(key);
          await local.put(key, Readable.from([Buffer.from(JSON.stringify(theirs))]));
        }
        return local.delete(key, options);
      },
    });
    const ours = await acquireStorageLock(storage, 'cleanup');
    racing = true;
    await ours.release();
    expect(JSON.parse(await readFile(lockFile, 'utf8'))).to.deep.equal(theirs);
  });

  it('takes over a lock whose PID now belongs to another process, and respects one whose holder still runs', async function () {
    const lockFile = path.join(temp.path, 'synapse-backup.lock');
    const storage = await LocalDirectoryStorage.open(temp.path);
    // A live process in the crashed run's PID: what a busy host gives a new process after a crash.
    const other = spawn('sleep', ['60'], {stdio: 'ignore'});
    try {
      const base = {pid: other.pid!, hostname: hostname(), operation: 'backup run', acquiredAt: new Date().toISOString()};
      await writeFile(lockFile, JSON.stringify({...base, processStartTime: 'another-boot/123'}));
      const taken = await acquireStorageLock(storage, 'cleanup');
      expect(taken.holder.pid).to.equal(process.pid);
      expect(taken.holder.processStartTime).to.match(/^[0-9a-f-]+\/\d+$/);
      await taken.release();

      // The same PID with its real start time is the same, running process: the lock holds.
      await writeFile(lockFile, JSON.stringify({...base, processStartTime: processStartTime(other.pid!)}));
      const refused = await acquireStorageLock(storage, 'cleanup').catch((error: unknown) => error);
      expect(isSynapseError(refused) && refused.code).to.equal('E_LOCKED');
      // A lock from an older version has no start time: a live PID keeps it held.
      await writeFile(lockFile, JSON.stringify(base));
      const legacy = await acquireStorageLock(storage, 'cleanup').catch((error: unknown) => error);
      expect(isSynapseError(legacy) && legacy.code).to.equal('E_LOCKED');
    } finally {
      other.kill();
    }
  });
});

describe('host mutex', function () {
  this.timeout(30_000);
  const name = `test-${process.pid}-${Date.now()}`;
  const module = path.resolve(import.meta.dirname, '../../src/core/lock/host-mutex.ts');

  /** Another process that takes the mutex and keeps it until it is killed. */
  async function holdInAnotherProcess() {
    const script = `import {runExclusivelyOnThisHost} from ${JSON.stringify(module)};
      await runExclusivelyOnThisHost(${JSON.stringify(name)}, 5000, async () => { console.log('held'); await new Promise((resolve) => setTimeout(resolve, 60000)); });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {stdio: ['ignore', 'pipe', 'inherit']});
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    expect(line.toString().trim()).to.equal('held');
    return child;
  }

  it('keeps out other processes while held, and is free the moment its holder is killed', async function () {
    const holder = await holdInAnotherProcess();
    try {
      let ran = false;
      expect(await runExclusivelyOnThisHost(name, 300, async () => void (ran = true))).to.equal(false);
      expect(ran).to.equal(false);
      holder.kill('SIGKILL');
      await once(holder, 'exit');
      // A crashed holder leaves nothing behind that a later run would have to clean up.
      expect(await runExclusivelyOnThisHost(name, 0, async () => void (ran = true))).to.equal(true);
      expect(ran).to.equal(true);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('runs the work of callers in one process one at a time', async function () {
    let inside = 0;
    let mostInside = 0;
    const work = async (): Promise<void> => {
      inside++;
      mostInside = Math.max(mostInside, inside);
      await sleep(20);
      inside--;
    };
    const outcomes = await Promise.all(Array.from({length: 5}, () => runExclusivelyOnThisHost(name, 5000, work)));
    expect(outcomes).to.deep.equal([true, true, true, true, true]);
    expect(mostInside).to.equal(1);
  });

  it('never lets work run unguarded when the name cannot be bound: with no file descriptor left it is refused, not run', async function () {
    // A real EMFILE: the process's descriptor limit is used up before it asks for the mutex.
    const script = `import {openSync} from 'node:fs';
      import {runExclusivelyOnThisHost} from ${JSON.stringify(module)};
      const held = [];
      // Every descriptor, and every one the runtime frees meanwhile.
      const exhaust = () => { try { for (;;) held.push(openSync('/dev/null', 'r')); } catch (error) { if (error.code !== 'EMFILE') throw error; } };
      exhaust();
      const keep = setInterval(exhaust, 1);
      let ran = false;
      const outcome = await runExclusivelyOnThisHost(${JSON.stringify(`${name}-emfile`)}, 200, async () => void (ran = true)).then((value) => String(value), (error) => error.name + ' ' + error.code);
      clearInterval(keep);
      process.stdout.write(JSON.stringify({outcome, ran}));`;
    const child = spawn('sh', ['-c', 'ulimit -n 64 && exec "$0" --import tsx --input-type=module -e "$1"', process.execPath, script], {stdio: ['ignore', 'pipe', 'inherit']});
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(child, 'exit');
    expect(JSON.parse(Buffer.concat(chunks).toString())).to.deep.equal({outcome: 'HostMutexUnavailable EMFILE', ran: false});
  });

  it('status --notify sends an alert once when a second run asked before the first sent it and waited for it', async function () {
    const state = (await makeTempDir('synapse-alertorder-')).path;
    const sent: string[] = [];
    const problem = {id: 'backup_overdue:shop:hourly', alert: 'alert.backup_overdue', level: 'critical', message: 'the newest hourly backup is overdue'} as const;
    const run = (now: Date) =>
      deliverAlerts({
        report: {problems: [problem], types: [{database: 'shop'}]} as unknown as StatusReport,
        storage: {scheme: 'local', location: '/srv/backups'},
        stateDirectories: [state],
        repeatIntervalMs: 86_400_000,
        now,
        send: async (name) => (sent.push(name), [{delivered: true} as DeliveryReport]),
        onWarning: (message) => expect.fail(message),
      });
    // The second run took its time before the first sent (they started together), and reached the state after it.
    const asked = new Date();
    await sleep(20);
    expect((await run(new Date())).sent).to.deep.equal([problem.id]);
    expect((await run(asked)).sent).to.deep.equal([]);
    expect(sent).to.deep.equal(['alert.backup_overdue']);
  });

  it('status --notify still sends an alert when the alert mutex cannot be taken, and says so: never a page that never came', async function () {
    const deliver = path.resolve(import.meta.dirname, '../../src/core/services/deliver-alerts.ts');
    const state = (await makeTempDir('synapse-alertstate-')).path;
    const script = `import {openSync} from 'node:fs';
      import {deliverAlerts} from ${JSON.stringify(deliver)};
      const held = [];
      const exhaust = () => { try { for (;;) held.push(openSync('/dev/null', 'r')); } catch (error) { if (error.code !== 'EMFILE') throw error; } };
      exhaust();
      const keep = setInterval(exhaust, 1);
      const sent = [];
      const warnings = [];
      const problem = {id: 'backup_overdue:shop:hourly', alert: 'alert.backup_overdue', level: 'critical', message: 'the newest hourly backup is overdue'};
      const outcome = await deliverAlerts({
        report: {problems: [problem], types: [{database: 'shop'}]},
        storage: {scheme: 'local', location: '/srv/backups'},
        stateDirectories: [${JSON.stringify(state)}],
        repeatIntervalMs: 86400000,
        now: new Date(),
        send: async (name) => (sent.push(name), [{delivered: true}]),
        onWarning: (message) => warnings.push(message),
      });
      clearInterval(keep);
      process.stdout.write(JSON.stringify({sent, outcome: outcome.sent, warnings}));`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {stdio: ['ignore', 'pipe', 'inherit']});
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(child, 'exit');
    const result = JSON.parse(Buffer.concat(chunks).toString()) as {sent: string[]; outcome: string[]; warnings: string[]};
    expect(result.sent).to.deep.equal(['alert.backup_overdue']);
    expect(result.outcome).to.deep.equal(['backup_overdue:shop:hourly']);
    expect(result.warnings.join('\n')).to.match(/unable to take the host-wide mutex .*EMFILE.*sending the alerts without it/);
  });
});
