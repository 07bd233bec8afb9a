import {expect} from 'chai';
import {execa} from 'execa';
import {writeFile} from 'node:fs/promises';
import {hostname} from 'node:os';
import path from 'node:path';

import {CLI, runCli, spawnCli} from '../../helpers/cli.js';
import {fakeBinDir, versionAware} from '../../helpers/fake-tools.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

/** The CLI with these arguments, as a shell command. */
const cli = (args: string): string => `'${process.execPath}' '${CLI}' ${args}`;

/** Runs a shell command on a pseudo-terminal (util-linux `script`), as an operator at a shell sees it, ANSI removed. */
async function onTerminal(program: string, env: Record<string, string | undefined>, cwd: string): Promise<string> {
  const assignments = Object.entries(env)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}='${String(value).replaceAll("'", "'\\''")}'`)
    .join(' ');
  const command = `stty cols 200 rows 50; env -i PATH='${process.env.PATH}' HOME=/root TERM=xterm ${assignments} ${program}`;
  const output = path.join(cwd, 'terminal.out');
  await execa('script', ['-qec', command, output], {cwd, reject: false, stdin: 'ignore'});
  const {readFile} = await import('node:fs/promises');
  return (await readFile(output, 'utf8')).replaceAll(/\x1b\[[0-9;?]*[a-zA-Z]/g, '').replaceAll('\r', '\n');
}

describe('what operators and scripts read', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('titles each stage after what actually runs: a zstd backup says zstd', async function () {
    const screen = await onTerminal(cli('backup run'), {...workspace.env, BACKUP_COMPRESSION: 'zstd'}, workspace.cwd);
    expect(screen).to.include('Compress (zstd 3)');
    expect(screen).to.include('Encrypt (aes-256-cbc)');
    expect(screen).not.to.include('Compress (gzip');
  });

  it('after Ctrl-C, stages that were running say cancelled, finished ones stay finished, and only the rest were not reached', async function () {
    // A pg_dump that has written its dump but has not exited yet: the backup is midway when Ctrl-C comes.
    const bin = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'pg_dump "$@"\nexec sleep 10')});
    const script = path.join(workspace.cwd, 'interrupt.sh');
    await writeFile(
      script,
      [
        `${cli('backup run')} &`,
        'pid=$!',
        `while [ -z "$(ls '${workspace.backupDir}' 2>/dev/null | grep '\\.pending$')" ]; do sleep 0.1; done`,
        'sleep 0.5',
        'kill -INT $pid',
        'wait $pid',
      ].join('\n'),
    );
    const screen = await onTerminal(`sh '${script}'`, {...workspace.env, PG_BIN_DIR: bin}, workspace.cwd);
    expect(screen).to.include('Check server, pg_dump and lock (PostgreSQL');
    expect(screen).to.include('Dump (pg_dump): cancelled');
    expect(screen).to.include('Store (local): cancelled');
    expect(screen).to.include('Metadata: not reached');
    expect(screen).not.to.include('Dump (pg_dump): not reached');
    // Once the work is under way, a stage that has not started waits (listr2's square), it does not spin.
    const underWay = screen.slice(screen.indexOf('✔ Check server'));
    expect(underWay).to.match(/◼ Metadata/);
    expect(underWay).not.to.match(/[\u2800-\u28ff] Metadata/);
    expect(underWay).to.match(/[\u2800-\u28ff] Dump \(pg_dump\)/);
  });

  it('answers an unknown command with the JSON envelope and the nearest command', async function () {
    const result = await runCli(['backup', 'lst', '--json'], {cwd: workspace.cwd});
    expect(result.exitCode).to.equal(2);
    expect(result.json).to.deep.include({status: 2, warnings: []});
    expect(result.json.error).to.include({code: 'E_USAGE', message: "unable to run 'backup lst': no such command"});
    expect(result.json.error.details).to.deep.equal({didYouMean: 'backup list'});
    const text = await runCli(['backup', 'lst'], {cwd: workspace.cwd});
    expect(text.exitCode).to.equal(2);
    expect(text.stderr).to.include('Did you mean `synapse-backup backup list`?');
  });

  it('lists in --help the environment variables each command reads', async function () {
    const expected: Record<string, string[]> = {
      run: ['DATABASE_URL', 'BACKUP_DIR', 'BACKUP_COMPRESSION', 'BACKUP_ENCRYPTION_ITERATIONS', 'PG_BIN_DIR', 'NOTIFY_', 'SYNAPSE_BACKUP_STORAGE_TIMEOUT_MS'],
      list: ['DATABASE_URL', 'BACKUP_DIR', 'BACKUP_ENCRYPTION_KEY'],
      restore: ['DATABASE_URL', 'BACKUP_DIR', 'BACKUP_ENCRYPTION_KEY', 'PG_BIN_DIR', 'SYNAPSE_BACKUP_LOCK_TIMEOUT_MS'],
      cleanup: ['BACKUP_DIR', 'BACKUP_RETENTION_HOURLY', 'BACKUP_RETENTION_DAILY', 'BACKUP_RETENTION_MONTHLY', 'NOTIFY_'],
    };
    for (const [command, variables] of Object.entries(expected)) {
      const help = await runCli(['backup', command, '--help'], {cwd: workspace.cwd});
      const section = help.stdout.slice(help.stdout.indexOf('Environment'));
      for (const variable of variables) expect(section, `${command}: ${variable}`).to.include(variable);
    }
  });

  it('logs that it took over a crashed run\'s lock', async function () {
    await workspace.backup();
    const dead = Number((await execa('sh', ['-c', 'sh -c "echo \\$\\$"'])).stdout.trim());
    await writeFile(path.join(workspace.backupDir, 'synapse-backup.lock'), JSON.stringify({pid: dead, hostname: hostname(), operation: 'backup run', acquiredAt: '2026-01-01T00:00:00.000Z'}));
    const result = await workspace.run(['backup', 'run', '--json']);
    expect(result.exitCode, result.stdout).to.equal(0);
    expect(result.json.warnings.join('\n')).to.include(`took over the lock left by 'backup run' (pid ${dead}`);
  });

  it('names the signal it got, and the way to stop at once', async function () {
    const name = await workspace.backup();
    const child = spawnCli(['backup', 'restore', name], {cwd: workspace.cwd, env: workspace.env});
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (stderr.includes('Starting in')) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    child.kill('SIGTERM');
    const outcome = await child;
    expect(outcome.exitCode).to.equal(130);
    expect(stderr).to.include('Received SIGTERM: stopping and cleaning up (send SIGTERM again to exit at once)');
    expect(stderr).not.to.include('Ctrl-C again');
  });

  it('says on stderr, under --json, that a restore waits out its countdown', async function () {
    const name = await workspace.backup();
    const result = await workspace.run(['backup', 'restore', name, '--json']);
    expect(result.exitCode, result.stdout).to.equal(0);
    expect(result.stderr).to.match(/Restoring .* will replace the content of database/);
    expect(result.stderr).to.include('Starting in 5 seconds');
    expect(JSON.parse(result.stdout).status).to.equal(0);
  });
});
