import {expect} from 'chai';
import {execa} from 'execa';
import {createHash, randomBytes} from 'node:crypto';
import {chmod, mkdir, rm, truncate, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {Readable, Writable} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import {LocalDirectoryStorage} from '../../../plugins/storage-local/src/local-directory-storage.js';
import {BLOCK_SIZE, BlockPool, createBlockCompressor, createDecompressStream, type CompressionSettings} from '../../../src/core/pipeline/index.js';
import {WalCodecFailure, WalKeys, encodeWalFile, pushAhead, type EncodedWalFile, type WalPushContext} from '../../../src/core/wal/index.js';
import {acknowledge, boundLocations, prepareSpool} from '../../../src/core/wal/acknowledgements.js';
import {ENCODING_WORKERS_FROM, READ_AHEAD_BYTES, WalEncodingWorkers, adoptEarlyEncoders, startEarlyEncoding} from '../../../src/core/wal/wal-encoding-workers.js';
import {startEarlyWalPush} from '../../../src/cli/wal/early-start.js';
import {makeTempDir} from '../../helpers/temp.js';

async function decompressed(algorithm: CompressionSettings['algorithm'], pieces: readonly Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces, {objectMode: false}), createDecompressStream(algorithm), new Writable({write: (chunk: Buffer, _encoding, callback) => (out.push(chunk), callback())}));
  return Buffer.concat(out);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** What an encoded file held in memory decodes to. */
const contentOf = async (encoded: EncodedWalFile): Promise<Buffer> => decompressed('zstd', encoded.compressed!);

/**
 * `wal push` reads, hashes and compresses a backlog on worker threads: they must hand back exactly
 * what the main thread's encoder does (the digest names and authenticates the file), say what
 * failed as it does, and never fail a push by failing themselves.
 */
describe('WAL encoding workers', function () {
  this.timeout(30_000);
  let directory: string;
  const warnings: string[] = [];
  const onWarning = (message: string): void => void warnings.push(message);

  before(async function () {
    directory = (await makeTempDir('synapse-encoders-')).path;
  });

  beforeEach(() => (warnings.length = 0));

  const contents: Record<string, Buffer> = {
    empty: Buffer.alloc(0),
    'one byte': Buffer.from('x'),
    'one block': randomBytes(BLOCK_SIZE),
    'blocks and a part, half compressible': Buffer.concat([randomBytes(BLOCK_SIZE), Buffer.alloc(BLOCK_SIZE + 12345, 'wal ')]),
  };

  for (const compression of [
    {algorithm: 'zstd', level: 3},
    {algorithm: 'gzip', level: 6},
  ] as const) {
    it(`encodes as the main thread does (${compression.algorithm}): the same digest, frames that decode to the file`, async function () {
      const workers = new WalEncodingWorkers({threads: 2, compression, onWarning});
      try {
        for (const [name, content] of Object.entries(contents)) {
          const file = path.join(directory, `${compression.algorithm}-${name.replaceAll(' ', '-')}`);
          await writeFile(file, content);
          const here = await encodeWalFile(file, compression, {pool: new BlockPool(BLOCK_SIZE)});
          const there = await workers.encode(file, () => Promise.reject(new Error('fallback used')));
          expect(there.path, name).to.equal(file);
          expect(there.bytes, name).to.equal(content.length);
          expect(here.bytes, name).to.equal(content.length);
          // Held in memory, it is tagged by what is stored (format 2): no SHA-256 of the file is taken.
          expect('sha256' in there || 'sha256' in here, name).to.equal(false);
          expect(await decompressed(compression.algorithm, there.compressed!), name).to.deep.equal(content);
          // One frame or member per block, as the main thread writes them.
          expect((await decompressed(compression.algorithm, here.compressed!)).equals(content), name).to.equal(true);
          if (compression.algorithm === 'zstd') {
            // The frame kind the main thread writes (its descriptor byte): a checksum, no content size.
            expect(there.compressed![0]!.subarray(0, 4).toString('hex'), name).to.equal('28b52ffd');
            expect(there.compressed![0]![4], name).to.equal(here.compressed![0]![4]);
          }
        }
        expect(warnings).to.deep.equal([]);
      } finally {
        await workers.close();
      }
    });
  }

  it('only hashes a file too large to hold (its tag is made from the SHA-256), as the main thread does, and many files at once', async function () {
    const compression: CompressionSettings = {algorithm: 'zstd', level: 3};
    const workers = new WalEncodingWorkers({threads: 2, compression, onWarning});
    try {
      const large = path.join(directory, 'large');
      const content = randomBytes(2 * BLOCK_SIZE + 1);
      await writeFile(large, content);
      const there = await workers.encode(large, () => Promise.reject(new Error('fallback used')), {inMemoryLimit: BLOCK_SIZE});
      expect(there.compressed).to.equal(undefined);
      expect(there).to.deep.include({bytes: content.length, sha256: sha256(content)});
      const here = await encodeWalFile(large, compression, {pool: new BlockPool(BLOCK_SIZE), inMemoryLimit: BLOCK_SIZE});
      expect(here.compressed).to.equal(undefined);
      expect(here).to.deep.include({bytes: content.length, sha256: sha256(content)});

      const files = await Promise.all(
        Array.from({length: 9}, async (_unused, index) => {
          const file = path.join(directory, `many-${index}`);
          const data = Buffer.alloc(BLOCK_SIZE / 2 + index, String(index));
          await writeFile(file, data);
          return {file, data};
        }),
      );
      const encoded = await Promise.all(files.map(({file}) => workers.encode(file, () => Promise.reject(new Error('fallback used')))));
      for (const [index, {file, data}] of files.entries()) {
        expect(encoded[index]!.path).to.equal(file);
        expect(await decompressed('zstd', encoded[index]!.compressed!)).to.deep.equal(data);
      }
    } finally {
      await workers.close();
    }
  });

  it('fails a file that cannot be read as reading, with its error code, and goes on with the next', async function () {
    const workers = new WalEncodingWorkers({threads: 1, compression: {algorithm: 'zstd', level: 3}, onWarning});
    try {
      const missing = path.join(directory, 'missing');
      const error = await workers.encode(missing, () => Promise.reject(new Error('fallback used'))).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).to.be.instanceOf(WalCodecFailure);
      expect((error as WalCodecFailure).step).to.equal('read');
      expect(((error as WalCodecFailure).error as NodeJS.ErrnoException).code).to.equal('ENOENT');
      // Opened, then refused by read(): a directory.
      const unreadable = await workers.encode(directory, () => Promise.reject(new Error('fallback used'))).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect((unreadable as WalCodecFailure).step).to.equal('read');
      expect(((unreadable as WalCodecFailure).error as NodeJS.ErrnoException).code).to.equal('EISDIR');
      const present = path.join(directory, 'present');
      await writeFile(present, 'wal');
      expect((await workers.encode(present, () => Promise.reject(new Error('fallback used')))).bytes).to.equal(3);
      expect(warnings).to.deep.equal([]);
    } finally {
      await workers.close();
    }
  });

  it('refuses a cancelled push at once', async function () {
    const workers = new WalEncodingWorkers({threads: 1, compression: {algorithm: 'zstd', level: 3}, onWarning});
    try {
      const controller = new AbortController();
      controller.abort(new Error('stopped by the test'));
      const error = await workers.encode(path.join(directory, 'present'), () => Promise.reject(new Error('fallback used')), {signal: controller.signal}).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect((error as WalCodecFailure).step).to.equal('read');
      expect((error as Error).message).to.equal('stopped by the test');

      // Cancelled while a worker has it: its answer is not taken.
      const large = path.join(directory, 'cancelled-midway');
      await writeFile(large, '');
      await truncate(large, 48 * 1024 * 1024);
      const midway = new AbortController();
      const encoding = workers.encode(large, () => Promise.reject(new Error('fallback used')), {signal: midway.signal});
      midway.abort(new Error('stopped midway'));
      const failure = await encoding.then(
        () => undefined,
        (reason: unknown) => reason,
      );
      expect((failure as Error)?.message).to.equal('stopped midway');
    } finally {
      await workers.close();
    }
  });

  it('hands the files of a worker that stops, or never starts, to the main thread, once said', async function () {
    const stopping = path.join(directory, 'stopping-worker.mjs');
    // A worker that takes its first file and dies with it.
    await writeFile(stopping, "import {parentPort} from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));\n");
    const compression: CompressionSettings = {algorithm: 'zstd', level: 3};
    const file = path.join(directory, 'handed-over');
    await writeFile(file, 'wal file');
    const fallback = (): Promise<EncodedWalFile> => encodeWalFile(file, compression, {pool: new BlockPool(BLOCK_SIZE)});
    for (const script of [new URL(`file://${stopping}`), new URL(`file://${path.join(directory, 'no-such-worker.mjs')}`)]) {
      warnings.length = 0;
      const workers = new WalEncodingWorkers({threads: 2, compression, onWarning, script});
      try {
        const encoded = await Promise.all([workers.encode(file, fallback), workers.encode(file, fallback), workers.encode(file, fallback)]);
        for (const each of encoded) {
          expect(each.bytes).to.equal(8);
          expect(await contentOf(each)).to.deep.equal(Buffer.from('wal file'));
        }
        expect(warnings, script.pathname).to.have.length(1);
        expect(warnings[0]).to.match(/a WAL encoding worker stopped .*; its files are encoded on the main thread/);
        expect(workers.running).to.equal(0);
      } finally {
        await workers.close();
      }
    }
  });

  it('encodes files ahead of their asking; each result is taken once, and a stopped worker leaves the file to the one who asks', async function () {
    const compression: CompressionSettings = {algorithm: 'zstd', level: 3};
    const first = path.join(directory, 'ahead-1');
    const second = path.join(directory, 'ahead-2');
    await writeFile(first, 'first');
    await writeFile(second, 'second');
    const workers = new WalEncodingWorkers({threads: 1, compression, onWarning});
    try {
      workers.readAhead([first, second]);
      expect(workers.prefetchedFiles).to.deep.equal([first, second]);
      const taken = await workers.encode(first, () => Promise.reject(new Error('fallback used')));
      expect(await contentOf(taken)).to.deep.equal(Buffer.from('first'));
      expect(workers.prefetchedFiles).to.deep.equal([second]);
      await writeFile(first, 'first, later');
      const again = await workers.encode(first, () => Promise.reject(new Error('fallback used')));
      expect(await contentOf(again), 'a second asking reads the file again').to.deep.equal(Buffer.from('first, later'));
    } finally {
      await workers.close();
    }

    const stopping = path.join(directory, 'stopping-ahead.mjs');
    await writeFile(stopping, "import {parentPort} from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));\n");
    const dying = new WalEncodingWorkers({threads: 1, compression, onWarning, script: new URL(`file://${stopping}`)});
    try {
      dying.readAhead([second]);
      const handed = await dying.encode(second, () => encodeWalFile(second, compression, {pool: new BlockPool(BLOCK_SIZE)}));
      expect(await contentOf(handed)).to.deep.equal(Buffer.from('second'));
      expect(warnings).to.have.length(1);
    } finally {
      await dying.close();
    }
  });

  it('keeps READ_AHEAD_BYTES of files in work ahead at most (one at least), and drops what a newer list leaves out', async function () {
    const compression: CompressionSettings = {algorithm: 'zstd', level: 3};
    const large = [0, 1, 2].map((index) => path.join(directory, `sparse-${index}`));
    // Sparse: their size counts, not what they hold on disk.
    for (const file of large) {
      await writeFile(file, '');
      await truncate(file, READ_AHEAD_BYTES - 1024 * 1024);
    }
    const workers = new WalEncodingWorkers({threads: 1, compression, onWarning});
    try {
      workers.readAhead(large);
      expect(workers.prefetchedFiles, 'one file of nearly the whole budget').to.deep.equal([large[0]]);
      const small = [0, 1, 2].map((index) => path.join(directory, `small-${index}`));
      for (const file of small) await writeFile(file, 'small');
      workers.readAhead([large[0]!, ...small]);
      expect(workers.prefetchedFiles, 'small files fit beside it').to.deep.equal([large[0], ...small]);
      workers.readAhead([small[1]!, small[2]!]);
      expect(workers.prefetchedFiles, 'left out of the newer list').to.deep.equal([small[1], small[2]]);
    } finally {
      await workers.close();
    }
  });

  it('early workers: adopted by a push of the same compression, stopped for another, and never keep a process alive', async function () {
    const file = path.join(directory, 'early');
    await writeFile(file, 'early');
    startEarlyEncoding({compression: {algorithm: 'zstd', level: 3}, files: [file]});
    const other = adoptEarlyEncoders({algorithm: 'zstd', level: 4}, onWarning, 2);
    expect(other, 'another level').to.equal(undefined);
    expect(adoptEarlyEncoders({algorithm: 'zstd', level: 3}, onWarning, 2), 'taken once').to.equal(undefined);

    startEarlyEncoding({compression: {algorithm: 'zstd', level: 3}, files: [file]});
    const adopted = adoptEarlyEncoders({algorithm: 'zstd', level: 3}, onWarning, 2)!;
    try {
      expect(adopted.prefetchedFiles).to.deep.equal([file]);
      // One started early (the loading has the other core); the rest once adopted.
      expect(adopted.running).to.equal(2);
      expect((await adopted.encode(file, () => Promise.reject(new Error('fallback used')))).bytes).to.equal(5);
    } finally {
      await adopted.close();
    }

    // Started and never adopted (a command that fails first): the process still ends by itself.
    const child = path.join(directory, 'early-child.mjs');
    await writeFile(
      child,
      `import {startEarlyEncoding} from ${JSON.stringify(new URL('../../../src/core/wal/wal-encoding-workers.ts', import.meta.url).href)};
startEarlyEncoding({compression: {algorithm: 'zstd', level: 3}, files: [${JSON.stringify(file)}]});
// Alive long enough for the worker to be running, not long enough to matter.
setTimeout(() => {}, 500);
`,
    );
    const started = Date.now();
    const run = await execa(process.execPath, ['--import', 'tsx', child], {reject: false, timeout: 20_000});
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.timedOut).to.equal(false);
    expect(Date.now() - started).to.be.below(15_000);
  });

  it('bin/run.js starts workers for a push of a backlog, on the files the push takes, and none for a short one or WAL_PUSH_AHEAD=0', async function () {
    const root = (await makeTempDir('synapse-encoders-early-')).path;
    const pgWal = path.join(root, 'pg_wal');
    await mkdir(path.join(pgWal, 'archive_status'), {recursive: true});
    const names = Array.from({length: ENCODING_WORKERS_FROM + 1}, (_unused, index) => `0000000100000000000000${(index + 1).toString(16).toUpperCase().padStart(2, '0')}`);
    for (const name of names) {
      await writeFile(path.join(pgWal, name), name);
      await writeFile(path.join(pgWal, 'archive_status', `${name}.ready`), '');
    }
    const saved = {...process.env};
    const cwd = process.cwd();
    try {
      for (const name of ['BACKUP_LOCATIONS', 'BACKUP_STORAGE', 'BACKUP_ENCRYPTION_KEY', 'BACKUP_ENCRYPTION_KEY_FILE', 'WAL_PUSH_AHEAD', 'WAL_SPOOL_DIR']) delete process.env[name];
      Object.assign(process.env, {BACKUP_DIR: path.join(root, 'archive'), BACKUP_COMPRESSION: 'zstd', BACKUP_COMPRESSION_LEVEL: '3'});
      process.chdir(root);
      const requested = path.join('pg_wal', names[2]!);
      await startEarlyWalPush([requested]);
      const early = adoptEarlyEncoders({algorithm: 'zstd', level: 3}, onWarning, 2);
      try {
        expect(early?.prefetchedFiles).to.deep.equal([requested, ...names.filter((_name, index) => index !== 2).map((name) => path.join(pgWal, name))]);
      } finally {
        await early?.close();
      }

      // A file acknowledged in the spool for these locations is not pushed again, so not read ahead.
      const spool = path.join(pgWal, 'synapse-backup-spool');
      const bound = boundLocations(process.env)!;
      await prepareSpool(spool, bound);
      await acknowledge(spool, path.join(pgWal, names[4]!), 'key', bound);
      await startEarlyWalPush([requested]);
      const acknowledged = adoptEarlyEncoders({algorithm: 'zstd', level: 3}, onWarning, 2);
      try {
        expect(acknowledged?.prefetchedFiles).to.not.include(path.join(pgWal, names[4]!));
        expect(acknowledged?.prefetchedFiles).to.have.length(names.length - 1);
      } finally {
        await acknowledged?.close();
      }

      await rm(path.join(pgWal, 'archive_status', `${names[0]}.ready`));
      await startEarlyWalPush([requested]);
      expect(adoptEarlyEncoders({algorithm: 'zstd', level: 3}, onWarning, 2), `fewer than ${ENCODING_WORKERS_FROM} files`).to.equal(undefined);

      await writeFile(path.join(pgWal, 'archive_status', `${names[0]}.ready`), '');
      process.env.WAL_PUSH_AHEAD = '0';
      await startEarlyWalPush([requested]);
      expect(adoptEarlyEncoders({algorithm: 'zstd', level: 3}, onWarning, 2), 'WAL_PUSH_AHEAD=0').to.equal(undefined);
    } finally {
      process.chdir(cwd);
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });

  describe('in a push', function () {
    const compression: CompressionSettings = {algorithm: 'zstd', level: 3};

    async function pushBacklog(files: number): Promise<{mainThreadBlocks: number; stored: string[]; names: string[]}> {
      const root = (await makeTempDir('synapse-encoders-push-')).path;
      const pgWal = path.join(root, 'pg_wal');
      await mkdir(path.join(pgWal, 'archive_status'), {recursive: true});
      const names: string[] = [];
      for (let index = 1; index <= files; index++) {
        const name = `0000000100000000000000${index.toString(16).toUpperCase().padStart(2, '0')}`;
        await writeFile(path.join(pgWal, name), Buffer.alloc(BLOCK_SIZE + index, `segment ${index} `));
        await writeFile(path.join(pgWal, 'archive_status', `${name}.ready`), '');
        names.push(name);
      }
      await chmod(pgWal, 0o700);
      const storage = await LocalDirectoryStorage.open(path.join(root, 'archive'), 'read-write', {create: true});
      const compressor = createBlockCompressor(compression);
      let mainThreadBlocks = 0;
      const signal = new AbortController().signal;
      const context: WalPushContext = {
        compression,
        compressor: {compress: (block) => (mainThreadBlocks++, compressor.compress(block)), close: () => compressor.close()},
        blocks: new BlockPool(BLOCK_SIZE),
        signal,
        onWarning,
        archive: Promise.resolve({locations: [{name: 'primary', storage}], codec: {compression, encryption: undefined, keys: new WalKeys(undefined)}, signal, onWarning, claims: new Map()}),
      };
      try {
        const {requested, ahead} = await pushAhead(context, {path: path.join(pgWal, names[0]!), systemIdentifier: '7000000000000000001'}, {
          pushAhead: 64,
          parallel: 4,
          spoolDirectory: undefined,
          acknowledge: 'all',
          env: {process: {BACKUP_DIR: path.join(root, 'archive')}, dotenv: {}},
          pgWal,
        });
        expect([requested.file, ...ahead]).to.deep.equal(names);
      } finally {
        compressor.close();
      }
      const stored: string[] = [];
      for (const object of (await storage.list('wal/')).filter((listed) => /^[0-9A-F]{24}-/.test(path.basename(listed.key)))) {
        const name = path.basename(object.key).split('-')[0]!;
        const index = names.indexOf(name) + 1;
        const chunks: Buffer[] = [];
        for await (const chunk of await storage.get(object.key)) chunks.push(chunk as Buffer);
        const content = await decompressed('zstd', chunks);
        if (content.equals(Buffer.alloc(BLOCK_SIZE + index, `segment ${index} `))) stored.push(name);
      }
      return {mainThreadBlocks, stored: stored.sort(), names};
    }

    it(`encodes a backlog of ${ENCODING_WORKERS_FROM} files or more on the workers, a shorter one here; every file stored as it is`, async function () {
      const backlog = await pushBacklog(ENCODING_WORKERS_FROM);
      expect(backlog.stored).to.deep.equal(backlog.names);
      expect(backlog.mainThreadBlocks, 'blocks compressed on the main thread').to.equal(0);
      const short = await pushBacklog(ENCODING_WORKERS_FROM - 1);
      expect(short.stored).to.deep.equal(short.names);
      expect(short.mainThreadBlocks, 'blocks compressed on the main thread').to.equal(2 * (ENCODING_WORKERS_FROM - 1));
      expect(warnings).to.deep.equal([]);
    });
  });
});
