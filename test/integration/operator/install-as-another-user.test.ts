import {expect} from 'chai';
import {execa} from 'execa';
import {existsSync} from 'node:fs';
import {chmod, mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {createTestDatabase, seedSampleData} from '../../helpers/database.js';

/** What `npm ci` leaves in /opt/synapse-backup: everything the CLI runs from. */
const INSTALLED = ['bin', 'dist', 'node_modules', '.node-runtime', 'package.json', 'oclif.manifest.json', 'packages', 'plugins', 'scripts'];

/**
 * The README's install: root runs `npm ci` in a root-owned directory; cron and systemd run the
 * launcher as another user, here `postgres`. Nothing may be built or written in the install at
 * run time.
 */
describe('installed by root, run by another user (runuser -u postgres)', function () {
  this.timeout(180_000);
  let root: string;
  let install: string;
  let home: string;
  let backups: string;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;

  before(async function () {
    root = await mkdtemp(path.join(tmpdir(), 'synapse-install-'));
    await chmod(root, 0o755);
    install = path.join(root, 'opt', 'synapse-backup');
    await execa('mkdir', ['-p', install]);
    const present = INSTALLED.filter((entry) => existsSync(path.join(PROJECT_ROOT, entry)));
    await execa('cp', ['-a', ...present.map((entry) => path.join(PROJECT_ROOT, entry)), install]);
    await execa('chown', ['-R', 'root:root', root]);
    await execa('chmod', ['-R', 'go+rX,go-w', root]);
    home = path.join(root, 'home-postgres');
    backups = path.join(root, 'backups');
    for (const directory of [home, backups]) {
      await execa('mkdir', ['-p', directory]);
      await execa('chown', ['postgres:postgres', directory]);
    }
    database = await createTestDatabase();
    await seedSampleData(database.name, 20);
  });

  after(async function () {
    await database?.drop();
    await rm(root, {recursive: true, force: true});
  });

  function asPostgres(command: string) {
    return execa('runuser', ['-u', 'postgres', '--', 'env', '-i', 'PATH=/usr/local/bin:/usr/bin:/bin', `HOME=${home}`, `DATABASE_URL=${database.url}`, `BACKUP_DIR=${backups}`, 'sh', '-c', command], {
      reject: false,
      cwd: '/',
    });
  }

  async function installSnapshot(): Promise<string> {
    return (await execa('find', [install, '-path', `${install}/node_modules`, '-prune', '-o', '-path', `${install}/.node-runtime`, '-prune', '-o', '-newer', path.join(install, 'package.json'), '-print'])).stdout;
  }

  it('runs the launcher from cron, as documented, with no build and nothing written to the install', async function () {
    const before = await installSnapshot();
    const run = await asPostgres(`${install}/bin/synapse-backup backup run --backup-type daily --json`);
    expect(run.exitCode, run.stdout + run.stderr).to.equal(0);
    expect(JSON.parse(run.stdout).result.name).to.match(/^backup_daily_/);
    // The backup, its metadata, and the run's entry in the journal.
    expect((await readdir(backups)).filter((file) => !file.startsWith('synapse-backup.journal.'))).to.have.length(2);
    const listed = await asPostgres(`cd / && ${install}/bin/synapse-backup backup list --json`);
    expect(JSON.parse(listed.stdout).result.backups).to.have.length(1);
    expect(await installSnapshot()).to.equal(before);
  });

  it('runs as `synapse-backup` from PATH through a link to the launcher, from any directory', async function () {
    const bin = path.join(root, 'usr-local-bin');
    await execa('mkdir', ['-p', bin]);
    await execa('ln', ['-s', path.join(install, 'bin', 'synapse-backup'), path.join(bin, 'synapse-backup')]);
    const listed = await execa('runuser', ['-u', 'postgres', '--', 'env', '-i', `PATH=${bin}:/usr/bin:/bin`, `HOME=${home}`, `DATABASE_URL=${database.url}`, `BACKUP_DIR=${backups}`, 'sh', '-c', 'cd / && synapse-backup backup list --json'], {reject: false});
    expect(listed.exitCode, listed.stdout + listed.stderr).to.equal(0);
    expect(JSON.parse(listed.stdout).status).to.equal(0);
  });

  it("installs a plugin for every user as the README's recipe says, outside the checkout, and the cron user loads it", async function () {
    // The recipe's own directory: root's, read-only to others, outside the install.
    const shared = '/usr/local/lib/synapse-backup-plugins';
    const existed = existsSync(shared);
    const packed = await execa('npm', ['pack', '--pack-destination', root, path.join(PROJECT_ROOT, 'examples', 'notify-plugin-template')], {cwd: root});
    const tarball = path.join(root, packed.stdout.trim().split('\n').pop()!);
    const envFile = path.join(root, 'plugin-env');
    const events = path.join(home, 'events.jsonl');
    await writeFile(envFile, `DATABASE_URL=${database.url}\nBACKUP_DIR=${backups}\nNOTIFY_JSONL_FILE=${events}\nNOTIFY_JSONL_EVENTS=*\n`);
    await chmod(envFile, 0o644);
    const before = await installSnapshot();
    try {
      // As the README writes it (the install directory being this test's copy).
      const installed = await execa('sh', ['-c', `sudo SYNAPSE_BACKUP_DATA_DIR=${shared} ${install}/bin/synapse-backup plugins install file:${tarball}`], {reject: false});
      expect(installed.exitCode, installed.stdout + installed.stderr).to.equal(0);
      const appended = await execa('sh', ['-c', `echo 'SYNAPSE_BACKUP_DATA_DIR=${shared}' | sudo tee -a ${envFile}`], {reject: false});
      expect(appended.exitCode).to.equal(0);
      const run = await asPostgres(`set -a && . ${envFile} && ${install}/bin/synapse-backup backup run --json`);
      expect(run.exitCode, run.stdout + run.stderr).to.equal(0);
      expect(JSON.parse(run.stdout).warnings.join('\n')).not.to.include('were not loaded');
      const lines = (await readFile(events, 'utf8')).trim().split('\n').map((line) => JSON.parse(line).event);
      expect(lines).to.deep.equal(['backup.started', 'backup.succeeded']);
      // Nothing written to the install, nor to the plugin directory at run time: state is the user's own.
      expect(await installSnapshot()).to.equal(before);
      const status = await asPostgres(`set -a && . ${envFile} && ${install}/bin/synapse-backup status --notify --json`);
      expect(JSON.parse(status.stdout).result.alerts.stateFile).to.match(new RegExp(`^${home}/\\.local/state/synapse-backup/alert-state/`));
    } finally {
      if (!existed) await rm(shared, {recursive: true, force: true});
    }
  });

  describe('the cron table `schedule --cron` writes, each line run as written with cron\'s environment', function () {
    let syslog: {messages: () => Promise<string>; stop: () => Promise<void>} | undefined;
    const stateHome = '/var/lib/postgresql/.local/state/synapse-backup';
    let stateExisted = false;

    before(async function () {
      stateExisted = existsSync(stateHome);
      // logger(1) needs a syslog socket; a stock Debian has journald's. Where none listens, stand one in.
      if (!existsSync('/dev/log')) {
        const file = path.join(root, 'syslog');
        await writeFile(file, '');
        const listener = execa('python3', ['-c', "import os,socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind('/dev/log')\nos.chmod('/dev/log',0o666)\nout=open(sys.argv[1],'ab',0)\nprint('ready',flush=True)\nwhile True: out.write(s.recv(65536)+b'\\n')", file], {reject: false});
        await new Promise<void>((resolve) => listener.stdout!.once('data', () => resolve()));
        syslog = {
          messages: () => readFile(file, 'utf8'),
          stop: async () => {
            listener.kill();
            await listener;
            await rm('/dev/log', {force: true});
          },
        };
      }
    });

    after(async function () {
      await syslog?.stop();
      if (!stateExisted) await rm(stateHome, {recursive: true, force: true});
    });

    it('runs every job as the configured user, with output in syslog', async function () {
      const etc = path.join(root, 'etc-synapse-backup');
      await execa('mkdir', ['-p', etc]);
      const keyFile = path.join(etc, 'key');
      await writeFile(keyFile, 'a-cron-key-that-is-long-enough-0123456789\n');
      const envFile = path.join(etc, 'env');
      await writeFile(envFile, `DATABASE_URL=${database.url}\nBACKUP_DIR=${backups}\nBACKUP_ENCRYPTION_KEY_FILE=${keyFile}\nBACKUP_ENCRYPTION_ITERATIONS=20000\n`);
      await execa('chown', ['postgres:postgres', keyFile, envFile]);
      await chmod(keyFile, 0o600);
      await chmod(envFile, 0o600);
      const generated = await execa(path.join(install, 'bin', 'synapse-backup'), ['schedule', '--cron', '--install-dir', install, '--env-file', envFile]);
      const table = generated.stdout.split('\n');
      // cron's own environment: HOME and LOGNAME from the password database, SHELL and PATH as the table sets them.
      const variables = Object.fromEntries(table.filter((line) => /^[A-Z]+=/.test(line)).map((line) => line.split(/=(.*)/s).slice(0, 2)));
      const cronEnvironment = {HOME: '/var/lib/postgresql', LOGNAME: 'postgres', SHELL: '/bin/sh', PATH: '/usr/bin:/bin', ...variables};
      const jobs = table.filter((line) => /^[0-9*]/.test(line)).map((line) => {
        const fields = line.split(' ');
        return {user: fields[5]!, command: fields.slice(6).join(' ')};
      });
      expect(jobs.map((job) => job.user)).to.deep.equal(Array(6).fill('postgres'));
      for (const job of jobs) {
        const run = await execa('runuser', ['-u', job.user, '--', 'env', '-i', ...Object.entries(cronEnvironment).map(([name, value]) => `${name}=${value}`), cronEnvironment.SHELL, '-c', job.command], {
          reject: false,
          cwd: cronEnvironment.HOME,
        });
        // What cron would mail: nothing, since the output went to syslog.
        expect(run.stdout + run.stderr, job.command).to.equal('');
      }
      const names = (await readdir(backups)).filter((file) => /^backup_.*\.enc$/.test(file));
      expect(names.map((file) => file.split('_')[1]).sort()).to.deep.equal(['daily', 'hourly', 'monthly']);
      if (syslog) {
        const logged = await syslog.messages();
        for (const text of ['synapse-backup: Backup backup_hourly_', 'backup verify: finished', 'backups kept', 'OK: all backups current', 'Data matches the backup']) expect(logged, text).to.include(text);
        expect(logged).not.to.include('unable to load');
      }
      // status --notify kept its alert state in the user's own state directory.
      expect(existsSync(path.join(stateHome, 'alert-state'))).to.equal(true);
    });
  });
});
