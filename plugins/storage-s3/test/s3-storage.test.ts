import {expect} from 'chai';
import {randomBytes} from 'node:crypto';
import {createServer, request, type Server} from 'node:http';
import {createServer as createTcpServer, type Socket} from 'node:net';
import {readFile} from 'node:fs/promises';
import path from 'node:path';
import {Readable} from 'node:stream';
import type {StorageBackend} from 'synapse-backup/plugin-api';
import {describeStorageContract} from '../../../src/testing/index.js';

import {spawnCli} from '../../../test/helpers/cli.js';
import {seedSampleData, snapshotDatabase, sql} from '../../../test/helpers/database.js';
import {fakeBinDir, versionAware} from '../../../test/helpers/fake-tools.js';
import {freePort, waitFor} from '../../../test/helpers/services.js';
import {startS3Server, type S3Endpoint} from '../../../test/helpers/s3fs-mount.js';
import {createWorkspace} from '../../../test/helpers/workspace.js';
import {CreateBucketCommand, HeadObjectCommand, S3Client} from '@aws-sdk/client-s3';

import {S3Storage} from '../src/s3-storage.js';
import {largestObject, partSizeFor} from '../src/s3-settings.js';

const MIB = 1024 * 1024;

describe('S3 part sizes', function () {
  it('grows the part size so that a stream of unknown length fits the part limit, or keeps it fixed when asked', function () {
    const growing = {partSize: 8 * MIB, fixedPartSize: false, maxParts: 10_000};
    expect([1, 1000, 1001, 2001, 9001, 10_000].map((number) => partSizeFor(number, growing) / MIB)).to.deep.equal([8, 8, 16, 32, 4096, 4096]);
    // About 7.8 TiB from 8 MiB parts.
    expect(largestObject(growing)).to.be.greaterThan(7.5 * 1024 ** 4);
    const fixed = {partSize: 8 * MIB, fixedPartSize: true, maxParts: 10_000};
    expect(partSizeFor(10_000, fixed)).to.equal(8 * MIB);
    expect(largestObject(fixed)).to.equal(80_000 * MIB);
  });
});

/** Against Ceph radosgw: strict SigV4, Content-MD5 checked, If-None-Match honoured. */
describe('S3 storage on Ceph radosgw', function () {
  this.timeout(120_000);
  let server: S3Endpoint;
  const saved: Record<string, string | undefined> = {};

  before(async function () {
    server = await startS3Server('radosgw');
    // The SDK's default credential chain reads these, as it would on a real host.
    for (const [name, value] of Object.entries({AWS_ACCESS_KEY_ID: server.accessKey, AWS_SECRET_ACCESS_KEY: server.secretKey})) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
  });

  after(async function () {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await server?.stop();
  });

  const env = (extra: Record<string, string> = {}) => ({BACKUP_S3_BUCKET: server.bucket, BACKUP_S3_ENDPOINT: server.endpoint, BACKUP_S3_PREFIX: `test-${randomBytes(4).toString('hex')}/`, ...extra});
  const open = (extra: Record<string, string> = {}) => S3Storage.open(env(extra), 'read-write');

  describeStorageContract('s3 (radosgw)', {
    create: () => open(),
    async dispose(storage: StorageBackend) {
      for (const area of ['', 'wal/', 'wal/history/']) for (const object of await storage.list(area)) await storage.delete(object.key);
    },
  });

  it('finds that radosgw honours conditional writes, not conditional deletes, and says where the backups are without a credential', async function () {
    const storage = await open();
    // Ceph 16 ignores If-Match on DeleteObject: a conditional replace there is a look, then the act.
    expect(storage.capabilities).to.deep.equal({atomicPut: true, conditionalPut: true, rangeReads: true, conditionalReplace: false});
    expect(storage.location).to.match(/^s3:\/\/synapse-backups\/test-[0-9a-f]{8}\/ at http:\/\/127\.0\.0\.1:\d+$/);
    expect(storage.location).not.to.include(server.secretKey);
    expect(await storage.list()).to.deep.equal([]);
    await storage.close();
  });

  it('grows the part size as a multipart upload goes on, and stores the stream whole', async function () {
    // 5 MiB parts doubling at every part (10 allowed): 5 + 10 + 20 MiB, then the rest in a fourth.
    const storage = await open({BACKUP_S3_PART_SIZE: '5m', BACKUP_S3_MAX_PARTS: '10'});
    const data = randomBytes(36 * MIB);
    const chunks = Array.from({length: 36 * 4}, (_, index) => data.subarray(index * (MIB / 4), (index + 1) * (MIB / 4)));
    const info = await storage.put('grown', Readable.from(chunks));
    expect(info.size).to.equal(data.length);
    // A multipart ETag ends with its number of parts: four growing ones, where 5 MiB parts would have made eight.
    expect(info.etag).to.match(/-4"?$/);
    const back = Buffer.concat(await (await storage.get('grown')).toArray());
    expect(back.equals(data)).to.equal(true);
    await storage.close();
  });

  it('refuses, before it completes anything, a stream larger than a fixed part size allows, and leaves no object', async function () {
    const storage = await open({BACKUP_S3_PART_SIZE: '5m', BACKUP_S3_MAX_PARTS: '2', BACKUP_S3_FIXED_PART_SIZE: 'true'});
    const failure = await storage.put('too-large', Readable.from([randomBytes(11 * MIB)])).catch((error: Error & {code?: string}) => error);
    expect((failure as {code?: string}).code).to.equal('EFBIG');
    expect((failure as Error).message).to.include('largest backup is 10485760 bytes');
    expect(await storage.stat('too-large')).to.equal(undefined);
    await storage.close();
  });

  it('lists more objects than fit one page', async function () {
    const storage = await open({BACKUP_S3_LIST_PAGE_SIZE: '2'});
    const keys = ['a', 'b', 'c', 'd', 'e'].map((letter) => `backup_${letter}`);
    for (const key of keys) await storage.put(key, Readable.from([Buffer.from(key)]));
    expect((await storage.list()).map((object) => object.key).sort()).to.deep.equal(keys);
    expect((await storage.list('backup_c')).map((object) => object.key)).to.deep.equal(['backup_c']);
    await storage.close();
  });

  it('names wrong credentials and a missing bucket as such, without the secret', async function () {
    const secret = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret-0123456789';
    try {
      const refused = await S3Storage.open(env(), 'read').catch((error: Error & {code?: string}) => error);
      expect((refused as {code?: string}).code).to.equal('EACCES');
      expect((refused as Error).message).to.include('credentials were refused').and.not.include('not-the-secret');
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = secret;
    }
    const missing = await S3Storage.open({...env(), BACKUP_S3_BUCKET: 'no-such-bucket'}, 'read').catch((error: Error & {code?: string}) => error);
    expect((missing as {code?: string}).code).to.equal('ENOENT');
    expect((missing as Error).message).to.include("the bucket 'no-such-bucket' does not exist");
  });

  it('backs up to the bucket with BACKUP_STORAGE=s3 and restores the same data from it', async function () {
    const workspace = await createWorkspace();
    try {
      await seedSampleData(workspace.database, 300);
      const s3 = {BACKUP_STORAGE: 's3', ...env(), AWS_ACCESS_KEY_ID: server.accessKey, AWS_SECRET_ACCESS_KEY: server.secretKey};
      const before = await snapshotDatabase(workspace.database);
      // A notification command records what it gets: the event on stdin, and its environment.
      const seen = path.join(workspace.cwd, 'seen-by-sink');
      const made = await workspace.run(['backup', 'run', '--backup-type', 'daily', '--verify', '--json'], {...s3, NOTIFY_COMMAND: `{ env; cat; } >> ${seen}`, NOTIFY_COMMAND_EVENTS: '*'});
      expect(made.exitCode, made.stdout + made.stderr).to.equal(0);
      expect(made.stdout + made.stderr).not.to.include(server.secretKey);
      const sinkSaw = await readFile(seen, 'utf8');
      expect(sinkSaw).to.include('backup.succeeded');
      expect(sinkSaw).not.to.include(server.secretKey);
      const listed = await workspace.run(['backup', 'list', '--json'], s3);
      expect(listed.json.result.backups.map((backup: {name: string; health: string}) => `${backup.name} ${backup.health}`)).to.deep.equal([`${made.json.result.name} good`]);
      await sql(workspace.database, "delete from orders; update customers set name = 'changed'");
      const restored = await workspace.run(['backup', 'restore', made.json.result.name, '--yes', '--json'], s3);
      expect(restored.exitCode, restored.stdout + restored.stderr).to.equal(0);
      expect(await snapshotDatabase(workspace.database)).to.deep.equal(before);
      const status = await workspace.run(['status', '--json'], {...s3, SYNAPSE_BACKUP_STATE_DIR: `${workspace.cwd}/state`});
      expect(status.exitCode, status.stdout).to.equal(0);
      expect(status.json.result.storage.freeBytes ?? null).to.equal(null);
    } finally {
      await workspace.dispose();
    }
  });

  it('asks for server-side encryption (SSE-KMS) on every object, small and multipart, and reads it back', async function () {
    const storage = await open({BACKUP_S3_SSE: 'kms', BACKUP_S3_SSE_KMS_KEY_ID: 'synapse-test-key', BACKUP_S3_PART_SIZE: '5m'});
    const client = new S3Client({region: 'us-east-1', endpoint: server.endpoint, forcePathStyle: true, credentials: {accessKeyId: server.accessKey, secretAccessKey: server.secretKey}});
    try {
      for (const [key, size] of [['small', 1000], ['multipart', 6 * MIB]] as const) {
        const data = randomBytes(size);
        await storage.put(key, Readable.from([data]));
        const head = await client.send(new HeadObjectCommand({Bucket: server.bucket, Key: `${storage.settings.prefix}${key}`}));
        expect(head.ServerSideEncryption, key).to.equal('aws:kms');
        expect(head.SSEKMSKeyId, key).to.equal('synapse-test-key');
        expect(Buffer.concat(await (await storage.get(key)).toArray()).equals(data), key).to.equal(true);
      }
    } finally {
      client.destroy();
      await storage.close();
    }
  });

  it('refuses a KMS key without SSE-KMS, and an unknown mode', async function () {
    for (const [extra, message] of [
      [{BACKUP_S3_SSE_KMS_KEY_ID: 'k'}, 'BACKUP_S3_SSE is not'],
      [{BACKUP_S3_SSE: 'rot13'}, "BACKUP_S3_SSE 'rot13' must be s3"],
    ] as const) {
      const failure = await S3Storage.open(env(extra), 'read').catch((error: Error) => error);
      expect((failure as Error).message).to.include(message);
    }
  });

  describe('Object Lock (immutable backups)', function () {
    const lockedBucket = 'synapse-locked';

    before(async function () {
      const client = new S3Client({region: 'us-east-1', endpoint: server.endpoint, forcePathStyle: true, credentials: {accessKeyId: server.accessKey, secretAccessKey: server.secretKey}});
      await client.send(new CreateBucketCommand({Bucket: lockedBucket, ObjectLockEnabledForBucket: true}));
      client.destroy();
    });

    it('refuses BACKUP_S3_OBJECT_LOCK_DAYS on a bucket without Object Lock', async function () {
      const failure = await S3Storage.open(env({BACKUP_S3_OBJECT_LOCK_DAYS: '7'}), 'read').catch((error: Error & {code?: string}) => error);
      expect((failure as Error).message).to.include("the bucket 'synapse-backups' has no Object Lock");
    });

    it('retains each backup and its metadata; cleanup keeps a retained backup with the reason, status says until when', async function () {
      const workspace = await createWorkspace();
      try {
        await seedSampleData(workspace.database, 20);
        const locked = {
          BACKUP_STORAGE: 's3',
          ...env({BACKUP_S3_BUCKET: lockedBucket, BACKUP_S3_OBJECT_LOCK_DAYS: '1', BACKUP_S3_OBJECT_LOCK_MODE: 'GOVERNANCE'}),
          AWS_ACCESS_KEY_ID: server.accessKey,
          AWS_SECRET_ACCESS_KEY: server.secretKey,
        };
        const older = await workspace.backup(locked);
        await new Promise((resolve) => setTimeout(resolve, 1100));
        const newer = await workspace.backup(locked);
        const storage = await S3Storage.open({...locked}, 'read-write');
        for (const key of [older, `${older}.meta.json`]) {
          const retainedUntil = (await storage.stat(key))?.retainedUntil;
          expect(retainedUntil, key).to.be.instanceOf(Date);
          expect(retainedUntil!.getTime() - Date.now()).to.be.within(23 * 3_600_000, 25 * 3_600_000);
        }
        // What must stay deletable is not retained: the run journal, the lock, markers.
        const journal = (await storage.list('synapse-backup.journal.'))[0]!;
        expect((await storage.stat(journal.key))?.retainedUntil).to.equal(undefined);
        const refused = await storage.delete(older).catch((error: Error & {code?: string}) => error);
        expect((refused as {code?: string}).code).to.equal('ERETAINED');
        expect(await storage.stat(older)).not.to.equal(undefined);

        const cleanup = await workspace.run(['backup', 'cleanup', '--json'], {...locked, BACKUP_RETENTION_HOURLY: '1'});
        expect(cleanup.exitCode, cleanup.stdout + cleanup.stderr).to.equal(0);
        const decision = cleanup.json.result.decisions.find((found: {name: string}) => found.name === older);
        expect(decision).to.include({action: 'keep'});
        expect(decision.reason).to.include('the storage retains it until').and.include('(Object Lock)');
        expect(await storage.stat(older)).not.to.equal(undefined);
        const status = await workspace.run(['status', '--json'], {...locked, SYNAPSE_BACKUP_STATE_DIR: path.join(workspace.cwd, 'state')});
        expect(status.json.result.types[0].newest.name).to.equal(newer);
        expect(status.json.result.types[0].newest.retainedUntil).to.be.a('string');
        const text = await workspace.run(['status'], {...locked, SYNAPSE_BACKUP_STATE_DIR: path.join(workspace.cwd, 'state')});
        expect(text.stdout).to.include('Object Lock: the newest hourly backup').and.include('cannot be deleted before');
        await storage.close();
      } finally {
        await workspace.dispose();
      }
    });
  });

  describe('faults, each a storage failure (exit 7) that names what failed, with nothing lost', function () {
    let workspace: Awaited<ReturnType<typeof createWorkspace>>;
    const s3 = (extra: Record<string, string> = {}) => ({BACKUP_STORAGE: 's3', ...env(), AWS_ACCESS_KEY_ID: server.accessKey, AWS_SECRET_ACCESS_KEY: server.secretKey, ...extra});

    beforeEach(async function () {
      workspace = await createWorkspace();
      await seedSampleData(workspace.database, 50);
    });

    afterEach(async function () {
      await workspace.dispose();
    });

    it('an endpoint that is down', async function () {
      const result = await workspace.run(['backup', 'run', '--json'], s3({BACKUP_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}`, BACKUP_S3_MAX_ATTEMPTS: '2'}));
      expect(result.exitCode, result.stdout).to.equal(7);
      expect(result.json.error.message).to.include('ECONNREFUSED').and.include('HeadBucket');
    });

    it('a server that accepts connections and never answers: bounded, not hung', async function () {
      const sockets = new Set<Socket>();
      const silent = createTcpServer((socket) => sockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const started = Date.now();
        const result = await workspace.run(['backup', 'list', '--json'], s3({BACKUP_S3_ENDPOINT: `http://127.0.0.1:${(silent.address() as {port: number}).port}`, BACKUP_S3_REQUEST_TIMEOUT_MS: '1000', BACKUP_S3_MAX_ATTEMPTS: '2'}));
        expect(result.exitCode, result.stdout).to.equal(7);
        expect(result.json.error.message).to.match(/no answer in time|timed? ?out/i);
        expect(Date.now() - started).to.be.below(30_000);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      }
    });

    it('503 SlowDown answers are retried, and the backup lands whole', async function () {
      // A proxy in front of radosgw that answers the first requests as an overloaded S3 does.
      let slowDowns = 3;
      const target = new URL(server.endpoint);
      const proxy: Server = createServer((incoming, outgoing) => {
        if (slowDowns > 0) {
          slowDowns--;
          incoming.resume();
          outgoing.writeHead(503, {'content-type': 'application/xml'}).end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
          return;
        }
        const forwarded = request({host: target.hostname, port: target.port, method: incoming.method, path: incoming.url, headers: incoming.headers}, (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        });
        incoming.pipe(forwarded);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      try {
        const result = await workspace.run(['backup', 'run', '--verify', '--json'], s3({BACKUP_S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as {port: number}).port}`}));
        expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
        expect(slowDowns).to.equal(0);
      } finally {
        proxy.closeAllConnections();
        await new Promise<void>((resolve) => proxy.close(() => resolve()));
      }
    });

    it('a slow server, slower than the request timeout in all but its silences: no false failure', async function () {
      // Each answer starts late, and a GET's body trickles: the whole takes longer than the
      // request timeout, and no silence does. The backup and its read-back must both succeed.
      const target = new URL(server.endpoint);
      let trickled = 0;
      const proxy: Server = createServer((incoming, outgoing) => {
        const forwarded = request({host: target.hostname, port: target.port, method: incoming.method, path: incoming.url, headers: incoming.headers}, (answer) => {
          setTimeout(() => {
            outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
            if (incoming.method !== 'GET') return answer.pipe(outgoing);
            answer.on('data', (chunk: Buffer) => {
              answer.pause();
              trickled += chunk.length;
              outgoing.write(chunk, () => setTimeout(() => answer.resume(), 150));
            });
            answer.on('end', () => outgoing.end());
          }, 400);
        });
        incoming.pipe(forwarded);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const bin = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'head -c 600000 /dev/urandom | base64 -w 76 | sed "s/^/-- /"\nexec pg_dump "$@"')});
      try {
        const started = Date.now();
        const result = await workspace.run(['backup', 'run', '--verify', '--json'], s3({BACKUP_S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as {port: number}).port}`, BACKUP_S3_REQUEST_TIMEOUT_MS: '1000', BACKUP_S3_MAX_ATTEMPTS: '1', PG_BIN_DIR: bin}));
        expect(result.exitCode, result.stdout + result.stderr).to.equal(0);
        expect(result.json.result.verification).to.include({verified: true});
        expect(trickled, 'the read-back went through the slow server').to.be.above(500_000);
        expect(Date.now() - started).to.be.above(3000);
      } finally {
        proxy.closeAllConnections();
        await new Promise<void>((resolve) => proxy.close(() => resolve()));
      }
    });

    it('a clock the server finds skewed, named as such', async function () {
      // What S3 answers a request signed more than 15 minutes off its own clock, every time (the SDK corrects its clock once and tries again).
      let answered = 0;
      const proxy: Server = createServer((incoming, outgoing) => {
        answered++;
        incoming.resume();
        outgoing
          .writeHead(403, {'content-type': 'application/xml', date: new Date(Date.now() + 3_600_000).toUTCString()})
          .end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message></Error>');
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      try {
        const result = await workspace.run(['backup', 'run', '--json'], s3({BACKUP_S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as {port: number}).port}`, BACKUP_S3_MAX_ATTEMPTS: '2'}));
        expect(result.exitCode, result.stdout).to.equal(7);
        expect(result.json.error.message).to.include("this machine's clock differs too much from the server's").and.include('NTP');
        expect(answered).to.be.at.least(1);
      } finally {
        proxy.closeAllConnections();
        await new Promise<void>((resolve) => proxy.close(() => resolve()));
      }
    });

    it('wrong credentials, named, at the command line', async function () {
      const result = await workspace.run(['backup', 'run', '--json'], s3({AWS_SECRET_ACCESS_KEY: 'not-the-secret-0123456789'}));
      expect(result.exitCode, result.stdout).to.equal(7);
      expect(result.json.error.message).to.include('the credentials were refused').and.not.include('not-the-secret');
    });

    it('the server killed mid-upload: the run fails naming the upload, no good backup appears, and the next run succeeds', async function () {
      const target = new URL(server.endpoint);
      let uploaded = 0;
      let dead = false;
      const sockets = new Set<import('node:net').Socket>();
      // A proxy in front of radosgw that dies for good once a few MB of parts went through it.
      const proxy: Server = createServer((incoming, outgoing) => {
        if (dead) return incoming.socket.destroy();
        incoming.on('data', (chunk: Buffer) => {
          uploaded += chunk.length;
          if (uploaded > 7 * MIB && !dead) {
            dead = true;
            for (const socket of sockets) socket.destroy();
          }
        });
        const forwarded = request({host: target.hostname, port: target.port, method: incoming.method, path: incoming.url, headers: incoming.headers}, (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        });
        forwarded.on('error', () => incoming.socket.destroy());
        incoming.pipe(forwarded);
      });
      proxy.on('connection', (socket) => sockets.add(socket));
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const settings = env({BACKUP_S3_PART_SIZE: '5m', BACKUP_S3_MAX_ATTEMPTS: '2'});
      const bin = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'head -c 9000000 /dev/urandom | base64 -w 76 | sed "s/^/-- /"\nexec pg_dump "$@"')});
      try {
        const result = await workspace.run(['backup', 'run', '--json'], {...s3(), ...settings, BACKUP_S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as {port: number}).port}`, PG_BIN_DIR: bin});
        expect(result.exitCode, result.stdout + result.stderr).to.equal(7);
        expect(result.json.error.message).to.match(/UploadPart|CompleteMultipartUpload|PutObject|socket|ECONNRESET|EPIPE/);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => proxy.close(() => resolve()));
      }
      const direct = {...s3(), BACKUP_S3_PREFIX: settings.BACKUP_S3_PREFIX};
      const listed = await workspace.run(['backup', 'list', '--json'], direct);
      expect(listed.json.result.backups.filter((backup: {health: string}) => backup.health === 'good')).to.deep.equal([]);
      const next = await workspace.run(['backup', 'run', '--json'], direct);
      expect(next.exitCode, next.stdout + next.stderr).to.equal(0);
    });

    it('a kill -9 mid-upload leaves no good backup, and the next cleanup aborts the upload and says so', async function () {
      const settings = env();
      const storage = await S3Storage.open(settings, 'read');
      // Incompressible SQL comments, more than a part, then pg_dump waits: the upload is open when the run dies.
      const bin = await fakeBinDir(path.join(workspace.cwd, 'bin'), {pg_dump: versionAware('pg_dump', 'head -c 9000000 /dev/urandom | base64 -w 76 | sed "s/^/-- /"\nsleep 60')});
      const child = spawnCli(['backup', 'run'], {cwd: workspace.cwd, env: {...workspace.env, ...s3(), BACKUP_S3_PREFIX: settings.BACKUP_S3_PREFIX, PG_BIN_DIR: bin}});
      try {
        await waitFor(async () => (await storage.abortStaleUploads(new Date(Date.now() + 60_000), {dryRun: true})).length > 0, 'the multipart upload', 60_000);
      } finally {
        child.kill('SIGKILL');
        await child;
      }
      const named = {...s3(), BACKUP_S3_PREFIX: settings.BACKUP_S3_PREFIX};
      const listed = await workspace.run(['backup', 'list', '--json'], named);
      expect(listed.json.result.backups).to.deep.equal([]);
      const dry = await workspace.run(['backup', 'cleanup', '--dry-run', '--json'], named);
      expect(dry.json.result.abortedUploads).to.have.length(1);
      const cleaned = await workspace.run(['backup', 'cleanup'], named);
      expect(cleaned.exitCode, cleaned.stdout + cleaned.stderr).to.equal(0);
      expect(cleaned.stdout).to.match(/aborted +the unfinished upload of backup_hourly_\d{8}_\d{6}\.sql\.gz\.enc \(begun /);
      expect(await storage.abortStaleUploads(new Date(Date.now() + 60_000), {dryRun: true})).to.deep.equal([]);
      await storage.close();
    });
  });
});
