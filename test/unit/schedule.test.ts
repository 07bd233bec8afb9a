import {expect} from 'chai';

import {SynapseError} from '../../src/core/errors/index.js';
import {DEFAULT_SCHEDULE_OPTIONS, SCHEDULED_JOBS, cronTable, systemdUnits, validateScheduleOptions} from '../../src/core/schedule/index.js';

describe('schedule: the pure parts', function () {
  it('writes one cron line per job, each loading the environment file as the user', function () {
    const jobs = cronTable(DEFAULT_SCHEDULE_OPTIONS).split('\n').filter((line) => /^[0-9*]/.test(line));
    expect(jobs).to.have.length(SCHEDULED_JOBS.length);
    for (const line of jobs) {
      expect(line).to.match(/^(\S+ ){5}postgres set -a && \. \/etc\/synapse-backup\/env && \/opt\/synapse-backup\/bin\/synapse-backup .+ 2>&1 \| logger -t synapse-backup$/);
    }
    expect(jobs.some((line) => line.startsWith('*/5 * * * * ') && line.includes('status --notify'))).to.equal(true);
    expect(jobs.some((line) => line.includes('backup test-restore --latest') && / 0 postgres /.test(line))).to.equal(true);
  });

  it('adds a weekly drill of the newest physical backup with --physical, and only then', function () {
    const drill = (table: string): string[] => table.split('\n').filter((line) => line.includes('--method physical'));
    expect(drill(cronTable(DEFAULT_SCHEDULE_OPTIONS))).to.deep.equal([]);
    const [line] = drill(cronTable({...DEFAULT_SCHEDULE_OPTIONS, physical: true}));
    expect(line).to.match(/^30 5 \* \* 0 postgres set -a && .* backup test-restore --latest --method physical 2>&1 \| logger -t synapse-backup$/);
    const units = systemdUnits({...DEFAULT_SCHEDULE_OPTIONS, physical: true}).map((unit) => unit.name);
    expect(units).to.include.members(['synapse-backup-restore-drill.service', 'synapse-backup-restore-drill.timer']);
    expect(systemdUnits(DEFAULT_SCHEDULE_OPTIONS).map((unit) => unit.name)).to.not.include('synapse-backup-restore-drill.service');
  });

  it('appends to a --log-file instead, and says that the user must be able to write it', function () {
    const table = cronTable({...DEFAULT_SCHEDULE_OPTIONS, logFile: '/var/log/synapse-backup/cron.log'});
    expect(table).to.include('backup run --backup-type hourly >> /var/log/synapse-backup/cron.log 2>&1\n').and.include('writable by postgres');
  });

  it('never puts the key in a unit or its environment, only in LoadCredential=', function () {
    for (const unit of systemdUnits(DEFAULT_SCHEDULE_OPTIONS).filter((file) => file.name.endsWith('.service'))) {
      expect(unit.text).to.include('LoadCredential=synapse-backup-key:/etc/synapse-backup/key');
      expect(unit.text).to.include('Environment=BACKUP_ENCRYPTION_KEY_FILE=%d/synapse-backup-key');
      expect(unit.text).not.to.match(/BACKUP_ENCRYPTION_KEY=/);
    }
  });

  const refused: Array<[string, Partial<typeof DEFAULT_SCHEDULE_OPTIONS>]> = [
    ['a relative install directory', {installDir: 'opt/synapse-backup'}],
    ['a newline that would add a directive', {envFile: '/etc/env\nExecStartPre=/bin/rm -rf /'}],
    ['a % that systemd and cron would expand', {installDir: '/opt/100%'}],
    ['a space', {logFile: '/var/log/synapse backup.log'}],
    ['a parent directory', {keyFile: '/etc/../root/key'}],
    ['a user name with a space', {user: 'post gres'}],
    ['a user name with a newline', {user: 'postgres\nroot'}],
  ];
  for (const [what, options] of refused) {
    it(`refuses ${what}`, function () {
      expect(() => validateScheduleOptions({...DEFAULT_SCHEDULE_OPTIONS, ...options})).to.throw(SynapseError);
    });
  }
});
