import {expect} from 'chai';
import {randomBytes} from 'node:crypto';
import {mkdir, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {LocalDirectoryStorage} from '../../../plugins/storage-local/src/local-directory-storage.js';
import {BLOCK_SIZE, BlockPool, createBlockCompressor, type CompressionSettings} from '../../../src/core/pipeline/index.js';
import {WalKeys, pushWalFiles, type PushRequest, type WalPushContext} from '../../../src/core/wal/index.js';
import {wrapStorage} from '../../helpers/storage.js';
import {makeTempDir} from '../../helpers/temp.js';

/**
 * How `wal push` spreads its files: the CPU's part (reading, compressing, encrypting) of the next
 * file runs while the storage still writes the last, against a real directory location.
 */
describe('WAL push lanes', function () {
  this.timeout(20_000);
  const compression: CompressionSettings = {algorithm: 'zstd', level: 3};

  async function setUp(files: number) {
    const root = (await makeTempDir('synapse-lanes-')).path;
    const pgWal = path.join(root, 'pg_wal');
    await mkdir(pgWal);
    const requests: PushRequest[] = [];
    for (let index = 1; index <= files; index++) {
      const file = path.join(pgWal, `0000000100000000000000${index.toString(16).toUpperCase().padStart(2, '0')}`);
      // Two blocks each, not compressible: what the compressor saw says how far preparing got.
      await writeFile(file, randomBytes(2 * BLOCK_SIZE));
      requests.push({path: file, systemIdentifier: '7000000000000000001'});
    }
    const storage = await LocalDirectoryStorage.open(path.join(root, 'archive'), 'read-write', {create: true});
    return {requests, storage};
  }

  function contextFor(storage: Parameters<typeof wrapStorage>[0], compressedBlocks: {count: number}): WalPushContext & {close(): void} {
    const compressor = createBlockCompressor(compression);
    const counting = {
      compress: (block: Buffer) => {
        compressedBlocks.count++;
        return compressor.compress(block);
      },
      close: () => compressor.close(),
    };
    const signal = new AbortController().signal;
    const onWarning = (message: string): void => {
      throw new Error(`unexpected warning: ${message}`);
    };
    return {
      compression,
      compressor: counting,
      blocks: new BlockPool(BLOCK_SIZE),
      signal,
      onWarning,
      archive: Promise.resolve({locations: [{name: 'primary', storage}], codec: {compression, encryption: undefined, keys: new WalKeys(undefined)}, signal, onWarning, claims: new Map()}),
      close: () => compressor.close(),
    };
  }

  it('prepares the next file while the storage still writes the last, one lane or several, and stores every file', async function () {
    for (const lanes of [1, 3]) {
      const {requests, storage} = await setUp(2 * lanes + 1);
      const compressedBlocks = {count: 0};
      let release!: () => void;
      const uploadsHeld = new Promise<void>((resolve) => (release = resolve));
      let walPuts = 0;
      let uploading = 0;
      let mostAtOnce = 0;
      const held = wrapStorage(storage, {
        put: async (key, body, options) => {
          if (key.endsWith('archive.json')) return storage.put(key, body, options);
          mostAtOnce = Math.max(mostAtOnce, ++uploading);
          try {
            // The first upload of each lane waits.
            if (walPuts++ < lanes) await uploadsHeld;
            return await storage.put(key, body, options);
          } finally {
            uploading--;
          }
        },
      });
      const context = contextFor(held, compressedBlocks);
      // Every lane has an upload waiting. They are let go once the compressor has seen the blocks
      // of a second file per lane: only lanes that did not wait for their uploads get there.
      const wanted = 2 * (2 * lanes);
      const watcher = setInterval(() => {
        if (compressedBlocks.count >= wanted) release();
      }, 5);
      const deadline = setTimeout(release, 8_000);
      const started = Date.now();
      try {
        const outcomes = await pushWalFiles(context, requests, lanes);
        expect(outcomes.map((outcome) => outcome.status), `${lanes} lane(s)`).to.deep.equal(requests.map(() => 'fulfilled'));
        expect(Date.now() - started, `${lanes} lane(s): the uploads were let go only by the deadline: nothing was prepared while they waited`).to.be.below(8_000);
        // Prepared files wait in memory for the storage: never more than a lane's worth.
        expect(mostAtOnce, `${lanes} lane(s): uploads at once`).to.equal(lanes);
        const stored = (await storage.list('wal/')).map((object) => path.basename(object.key).split('-')[0]);
        for (const request of requests) expect(stored, `${lanes} lane(s)`).to.include(path.basename(request.path));
      } finally {
        clearInterval(watcher);
        clearTimeout(deadline);
        context.close();
      }
    }
  });
});
