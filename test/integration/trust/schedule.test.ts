import {expect} from 'chai';
import {execa} from 'execa';
import {readFile, readdir} from 'node:fs/promises';
import path from 'node:path';

import {PROJECT_ROOT, runCli} from '../../helpers/cli.js';
import {makeTempDir} from '../../helpers/temp.js';

describe('schedule', function () {
  let temp: {path: string; remove: () => Promise<void>};

  beforeEach(async function () {
    temp = await makeTempDir('synapse-schedule-');
  });

  afterEach(async function () {
    await temp.remove();
  });

  it('writes systemd units that systemd-analyze verify accepts, every one of them', async function () {
    const output = path.join(temp.path, 'units');
    // The install directory must exist for verify, which checks ExecStart's binary: this checkout.
    const result = await runCli(['schedule', '--systemd', '--output', output, '--install-dir', PROJECT_ROOT, '--user', 'postgres', '--json'], {cwd: temp.path});
    expect(result.exitCode, result.stderr).to.equal(0);
    const files = (await readdir(output)).sort();
    expect(files).to.deep.equal(
      ['cleanup', 'daily', 'hourly', 'monthly', 'restore-test', 'status'].flatMap((job) => [`synapse-backup-${job}.service`, `synapse-backup-${job}.timer`]),
    );
    const verified = await execa('systemd-analyze', ['verify', ...files.map((file) => path.join(output, file))], {reject: false, env: {SYSTEMD_LOG_LEVEL: 'warning'}});
    expect(verified.exitCode, `${verified.stdout}\n${verified.stderr}`).to.equal(0);
    // Anything systemd-analyze says about our units is a defect, warnings included.
    expect(verified.stderr.split('\n').filter((line) => line.includes(output)), verified.stderr).to.deep.equal([]);

    const service = await readFile(path.join(output, 'synapse-backup-daily.service'), 'utf8');
    for (const line of ['User=postgres', 'EnvironmentFile=/etc/synapse-backup/env', `ExecStart=${PROJECT_ROOT}/bin/synapse-backup backup run --backup-type daily --verify`, 'ProtectSystem=full', 'PrivateTmp=true', 'NoNewPrivileges=true', 'LoadCredential=synapse-backup-key:/etc/synapse-backup/key']) {
      expect(service).to.include(`${line}\n`);
    }
    const timer = await readFile(path.join(output, 'synapse-backup-daily.timer'), 'utf8');
    expect(timer).to.include('Persistent=true\n').and.include('RandomizedDelaySec=').and.include('Unit=synapse-backup-daily.service\n');
    const status = await readFile(path.join(output, 'synapse-backup-status.timer'), 'utf8');
    expect(status).to.include('OnCalendar=*:0/5\n');
    // Calendar expressions are real ones: systemd-analyze parses each.
    for (const file of files.filter((name) => name.endsWith('.timer'))) {
      const calendar = /^OnCalendar=(.+)$/m.exec(await readFile(path.join(output, file), 'utf8'))![1]!;
      expect((await execa('systemd-analyze', ['calendar', calendar], {reject: false})).exitCode, `${file}: ${calendar}`).to.equal(0);
    }
  });

  it('writes the weekly drill of --physical as units systemd-analyze verify accepts', async function () {
    const output = path.join(temp.path, 'units-physical');
    const result = await runCli(['schedule', '--systemd', '--physical', '--output', output, '--install-dir', PROJECT_ROOT, '--user', 'postgres'], {cwd: temp.path});
    expect(result.exitCode, result.stderr).to.equal(0);
    const drill = ['synapse-backup-restore-drill.service', 'synapse-backup-restore-drill.timer'];
    expect(await readdir(output)).to.include.members(drill);
    const verified = await execa('systemd-analyze', ['verify', ...drill.map((file) => path.join(output, file))], {reject: false, env: {SYSTEMD_LOG_LEVEL: 'warning'}});
    expect(verified.exitCode, `${verified.stdout}\n${verified.stderr}`).to.equal(0);
    expect(verified.stderr.split('\n').filter((line) => line.includes(output)), verified.stderr).to.deep.equal([]);
    expect(await readFile(path.join(output, drill[0]!), 'utf8')).to.include(`ExecStart=${PROJECT_ROOT}/bin/synapse-backup backup test-restore --latest --method physical\n`);
  });

  it('prints a cron table that cron can take, and refuses an option that would inject a line', async function () {
    const result = await runCli(['schedule', '--cron', '--user', 'backup', '--env-file', '/srv/backup.env'], {cwd: temp.path});
    expect(result.exitCode, result.stderr).to.equal(0);
    expect(result.stdout).to.include('backup set -a && . /srv/backup.env && /opt/synapse-backup/bin/synapse-backup backup run --backup-type hourly');
    const injected = await runCli(['schedule', '--cron', '--env-file', '/etc/env\n* * * * * root rm -rf /', '--json'], {cwd: temp.path});
    expect(injected.exitCode).to.equal(2);
    expect(injected.json.error.message).to.include('--env-file');
    const neither = await runCli(['schedule'], {cwd: temp.path});
    expect(neither.exitCode).to.equal(2);
  });
});
