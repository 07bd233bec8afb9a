import {execa, type ResultPromise} from 'execa';
import {mkdir, readFile, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';

import {PROJECT_ROOT} from './cli.js';
import {freePort, isMounted, waitFor} from './services.js';
import {makeTempDir} from './temp.js';


export type S3Server = 's3rver' | 'radosgw';

export interface S3fsMount {
  readonly mountPoint: string;
  /** Where s3rver keeps the bucket's objects, to see what really reached the server; radosgw keeps them in its OSD. */
  readonly bucketDirectory: string | undefined;
  stop(): Promise<void>;
}

interface RunningServer {
  readonly port: number;
  readonly credentials: string;
  readonly bucketDirectory: string | undefined;
  stop(): Promise<void>;
}

async function startS3rver(root: string, bucket: string): Promise<RunningServer> {
  const data = path.join(root, 'data');
  await mkdir(data);
  const port = await freePort();
  const s3rver: ResultPromise = execa(process.execPath, [path.join(PROJECT_ROOT, 'node_modules', 's3rver', 'bin', 's3rver.js'), '-d', data, '-a', '127.0.0.1', '-p', String(port), '--configure-bucket', bucket], {
    reject: false,
    stdin: 'ignore',
  });
  await waitFor(async () => (await execa('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], {reject: false})).exitCode === 0, 's3rver');
  return {
    port,
    credentials: 'S3RVER:S3RVER',
    bucketDirectory: path.join(data, bucket),
    async stop() {
      s3rver.kill('SIGTERM');
      await s3rver;
    },
  };
}

/** Ceph radosgw: strict S3 (SigV4 checked, 412 on a conditional put), one monitor and one in-memory OSD. */
async function startRadosgw(root: string, bucket: string): Promise<RunningServer> {
  const ceph = path.join(root, 'ceph');
  await mkdir(ceph);
  const [monPort, port] = [await freePort(), await freePort()];
  const access = 'SYNAPSETEST';
  const secret = 'synapse-test-secret-0123456789';
  const stop = async () => {
    const pids: number[] = [];
    for (const daemon of ['rgw', 'osd', 'mon']) {
      const pid = Number((await readFile(path.join(ceph, `${daemon}.pid`), 'utf8').catch(() => '')).trim());
      if (pid > 0) pids.push(pid);
    }
    const signal = (pid: number, name: NodeJS.Signals | 0): boolean => {
      try {
        process.kill(pid, name);
        return true;
      } catch {
        return false;
      }
    };
    for (const pid of pids) signal(pid, 'SIGTERM');
    // An OSD may take a while to shut down; one that does not is killed.
    for (let waited = 0; waited < 3000 && pids.some((pid) => signal(pid, 0)); waited += 100) await sleep(100);
    for (const pid of pids) signal(pid, 'SIGKILL');
  };
  try {
    await execa('sh', [path.join(PROJECT_ROOT, 'test', 'helpers', 'start-radosgw.sh'), ceph, String(monPort), String(port), access, secret], {stdin: 'ignore', timeout: 120_000});
    await execa('curl', ['-sf', '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', `${access}:${secret}`, '-X', 'PUT', '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD', `http://127.0.0.1:${port}/${bucket}`]);
  } catch (error) {
    await stop();
    throw error;
  }
  return {port, credentials: `${access}:${secret}`, bucketDirectory: undefined, stop};
}

/**
 * A real s3fs-fuse mount of a bucket on an S3 server on loopback: s3rver (fast, lenient, in this
 * process's Node) or Ceph radosgw (strict). Needs root, s3fs and fuse3; radosgw needs Ceph.
 */
export async function startS3fsMount(serverKind: S3Server = 's3rver'): Promise<S3fsMount> {
  const temp = await makeTempDir('synapse-s3fs-');
  const mountPoint = path.join(temp.path, 'mnt');
  await mkdir(mountPoint);
  const bucket = 'synapse-backups';
  const server = serverKind === 'radosgw' ? await startRadosgw(temp.path, bucket) : await startS3rver(temp.path, bucket);
  const {port} = server;
  const passwd = path.join(temp.path, 'passwd');
  await writeFile(passwd, `${server.credentials}\n`, {mode: 0o600});
  const s3fs: ResultPromise = execa('s3fs', [bucket, mountPoint, '-f', '-o', `url=http://127.0.0.1:${port}`, '-o', 'use_path_request_style', '-o', `passwd_file=${passwd}`], {reject: false, stdin: 'ignore'});
  await waitFor(() => isMounted(mountPoint), 'the s3fs mount');
  return {
    mountPoint,
    bucketDirectory: server.bucketDirectory,
    async stop() {
      await execa('fusermount3', ['-u', '-z', mountPoint], {reject: false});
      s3fs.kill('SIGTERM');
      await s3fs;
      await server.stop();
      await temp.remove();
    },
  };
}

/** An S3 server on loopback with one empty bucket, for the S3 backend spoken to directly. */
export interface S3Endpoint {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly bucket: string;
  stop(): Promise<void>;
}

export async function startS3Server(serverKind: S3Server): Promise<S3Endpoint> {
  const temp = await makeTempDir('synapse-s3-');
  const bucket = 'synapse-backups';
  const server = serverKind === 'radosgw' ? await startRadosgw(temp.path, bucket) : await startS3rver(temp.path, bucket);
  const [accessKey, secretKey] = server.credentials.split(':') as [string, string];
  return {
    endpoint: `http://127.0.0.1:${server.port}`,
    accessKey,
    secretKey,
    bucket,
    async stop() {
      await server.stop();
      await temp.remove();
    },
  };
}
