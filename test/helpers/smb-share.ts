import {execa, type ResultPromise} from 'execa';
import {spawn, type ChildProcess} from 'node:child_process';
import {mkdir, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';

import {freePort, isMounted, waitFor} from './services.js';
import {makeTempDir} from './temp.js';

const PASSWORD = 'smb-test-password-3141';


export interface SmbShare {
  /** Where the share is mounted (fuse.rclone). */
  readonly mountPoint: string;
  /** The share's directory on the server side, to look at what really arrived. */
  readonly exported: string;
  /** Mounts the share (again). */
  mount(): Promise<void>;
  /** Takes the mount away the way a network failure does: rclone dies and the mount point is detached. */
  drop(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real SMB share: smbd on loopback with its own configuration and state under a temp dir, mounted
 * through rclone's FUSE mount (the kernel here has no CIFS client). Needs root, samba, rclone, fuse3.
 */
export async function startSmbShare(): Promise<SmbShare> {
  const temp = await makeTempDir('synapse-smb-');
  const root = temp.path;
  const exported = path.join(root, 'share');
  const mountPoint = path.join(root, 'mnt');
  for (const directory of ['share', 'mnt', 'private', 'lock', 'state', 'cache', 'pid', 'ncalrpc']) await mkdir(path.join(root, directory), {recursive: true, mode: 0o777});
  const port = await freePort();
  const conf = path.join(root, 'smb.conf');
  await writeFile(
    conf,
    [
      '[global]',
      '  interfaces = lo 127.0.0.1',
      '  bind interfaces only = yes',
      `  smb ports = ${port}`,
      ...Object.entries({'private dir': 'private', 'lock directory': 'lock', 'state directory': 'state', 'cache directory': 'cache', 'pid directory': 'pid', 'ncalrpc dir': 'ncalrpc'}).map(
        ([setting, name]) => `  ${setting} = ${path.join(root, name)}`,
      ),
      `  log file = ${path.join(root, 'smbd.log')}`,
      `  passdb backend = tdbsam:${path.join(root, 'private', 'passdb.tdb')}`,
      '  server role = standalone server',
      '  load printers = no',
      '  disable spoolss = yes',
      '  map to guest = never',
      '[share]',
      `  path = ${exported}`,
      '  read only = no',
      '',
    ].join('\n'),
  );
  await execa('smbpasswd', ['-c', conf, '-s', '-a', 'root'], {input: `${PASSWORD}\n${PASSWORD}\n`});
  const smbd: ChildProcess = spawn('smbd', ['--foreground', '--no-process-group', '-s', conf], {stdio: 'ignore', detached: true});
  await waitFor(async () => (await execa('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], {reject: false})).exitCode === 0, 'smbd');
  const obscured = (await execa('rclone', ['obscure', PASSWORD])).stdout.trim();
  const rcloneConf = path.join(root, 'rclone.conf');
  await writeFile(rcloneConf, `[smbtest]\ntype = smb\nhost = 127.0.0.1\nport = ${port}\nuser = root\npass = ${obscured}\n`, {mode: 0o600});
  let rclone: ResultPromise | undefined;

  const share: SmbShare = {
    mountPoint,
    exported,
    async mount() {
      rclone = execa('rclone', ['mount', 'smbtest:share', mountPoint, '--config', rcloneConf, '--vfs-cache-mode', 'off'], {reject: false, stdin: 'ignore'});
      await waitFor(() => isMounted(mountPoint), 'the rclone mount');
    },
    async drop() {
      rclone?.kill('SIGKILL');
      await rclone;
      rclone = undefined;
      await execa('fusermount3', ['-u', '-z', mountPoint], {reject: false});
      await waitFor(async () => !(await isMounted(mountPoint)), 'the mount to go');
    },
    async stop() {
      if (await isMounted(mountPoint)) {
        await execa('fusermount3', ['-u', '-z', mountPoint], {reject: false});
      }
      rclone?.kill('SIGTERM');
      await rclone;
      if (smbd.pid) {
        try {
          process.kill(-smbd.pid, 'SIGTERM');
        } catch {
          smbd.kill('SIGTERM');
        }
      }
      await sleep(100);
      await temp.remove();
    },
  };
  await share.mount();
  return share;
}
