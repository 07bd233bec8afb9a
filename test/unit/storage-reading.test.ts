import {expect} from 'chai';
import {Readable, Writable} from 'node:stream';
import {pipeline} from 'node:stream/promises';
import {setTimeout as sleep} from 'node:timers/promises';

import type {ObjectInfo, StorageBackend} from '../../src/contracts/storage.js';
import {tableBackend} from '../helpers/storage.js';
import {boundWhileStreaming, decorateStorage, listObjects, readRange, withOperationBounds} from '../../src/core/storage/index.js';

const info = (key: string): ObjectInfo => ({key, size: key.length, modifiedAt: new Date(0)});
/** A backend of plugin API 1.2 with these keys: list() only, in no order, and blind to areas, as an old plugin may be. */
function oldBackend(keys: readonly string[], extra: Partial<StorageBackend> = {}): StorageBackend {
  return tableBackend({list: async (prefix = '') => keys.filter((key) => key.startsWith(prefix)).map(info), ...extra});
}

async function keysOf(objects: AsyncIterable<ObjectInfo>): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of objects) keys.push(object.key);
  return keys;
}

describe('listing a storage a page at a time', function () {
  const keys = ['c', 'a', 'wal/1', 'b', 'wal/history/2', 'ab'];

  const cases: Array<[string, {prefix?: string; startAfter?: string}, string[]]> = [
    ['outside every area, in key order', {}, ['a', 'ab', 'b', 'c']],
    ['one area, not the one below it', {prefix: 'wal/'}, ['wal/1']],
    ['by prefix', {prefix: 'a'}, ['a', 'ab']],
    ['after a position', {startAfter: 'ab'}, ['b', 'c']],
  ];
  for (const [what, options, expected] of cases) {
    it(`walks an old backend's list(): ${what}`, async function () {
      expect(await keysOf(listObjects(oldBackend(keys), options))).to.deep.equal(expected);
    });
  }

  it('follows listPage from page to page, and stops on a backend whose next page would go back', async function () {
    const pages = new Map<string | undefined, {objects: ObjectInfo[]; next?: string}>([
      [undefined, {objects: [info('a'), info('b')], next: 'b'}],
      ['b', {objects: [info('b'), info('c'), info('elsewhere')], next: 'c'}],
      ['c', {objects: [info('d')], next: 'a'}],
    ]);
    const calls: Array<string | undefined> = [];
    const storage = oldBackend([], {
      listPage: async (options = {}) => {
        calls.push(options.startAfter);
        return pages.get(options.startAfter) ?? {objects: []};
      },
    });
    expect(await keysOf(listObjects(storage, {}))).to.deep.equal(['a', 'b', 'c', 'elsewhere', 'd']);
    expect(calls).to.deep.equal([undefined, 'b', 'c']);
    expect(await keysOf(listObjects(storage, {prefix: 'c'}))).to.deep.equal(['c']);
  });
});

describe('reads bounded while they stream', function () {
  /** A source that sends `chunks`, then nothing more, ever (a server that stopped sending). */
  function stallingAfter(chunks: number): Readable {
    let sent = 0;
    return new Readable({
      read() {
        if (sent++ < chunks) this.push(Buffer.alloc(1024, 1));
      },
    });
  }

  it('fails a read whose storage stops sending midway, after the timeout and not before', async function () {
    const started = Date.now();
    const bounded = boundWhileStreaming(stallingAfter(3), 300, () => Object.assign(new Error('the storage did not answer'), {code: 'ETIMEDOUT'}));
    let received = 0;
    const failure = await pipeline(
      bounded,
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          received += chunk.length;
          done();
        },
      }),
    ).catch((error: unknown) => error);
    expect((failure as {code?: string}).code).to.equal('ETIMEDOUT');
    expect(received).to.equal(3 * 1024);
    expect(Date.now() - started).to.be.at.least(250);
  });

  it('does not count the time a slow reader holds back', async function () {
    const data = Array.from({length: 40}, (_, index) => Buffer.alloc(16 * 1024, index));
    const bounded = boundWhileStreaming(Readable.from(data, {highWaterMark: 1}), 100, () => new Error('timed out'));
    let received = 0;
    await pipeline(
      bounded,
      new Writable({
        highWaterMark: 1,
        async write(chunk: Buffer, _encoding, done) {
          received += chunk.length;
          // A reader (psql building an index) far slower than the timeout, now and then.
          if (received % (160 * 1024) === 0) await sleep(250);
          done();
        },
      }),
    );
    expect(received).to.equal(40 * 16 * 1024);
  });

  it('is what withOperationBounds hands out for every get, naming the read that stalled', async function () {
    const storage = withOperationBounds(oldBackend([], {get: async () => stallingAfter(1)}), {timeoutMs: 200});
    const failure = await (await storage.get('backup_x')).toArray().catch((error: unknown) => error);
    expect((failure as Error).message).to.match(/unable to read 'backup_x' at table: the storage did not answer within 0\.2 s/);
  });
});

describe('ranged reads', function () {
  const bytes = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
  function backend(rangeReads: boolean): {storage: StorageBackend; asked: Array<{offset?: number; length?: number}>} {
    const asked: Array<{offset?: number; length?: number}> = [];
    const storage = oldBackend([], {
      capabilities: {atomicPut: true, conditionalPut: true, rangeReads},
      get: async (_key, options = {}) => {
        asked.push({...(options.offset === undefined ? {} : {offset: options.offset}), ...(options.length === undefined ? {} : {length: options.length})});
        const start = rangeReads ? (options.offset ?? 0) : 0;
        const end = rangeReads && options.length !== undefined ? start + options.length : bytes.length;
        // In small chunks, so that a range spans several.
        const chunks: Buffer[] = [];
        for (let at = start; at < end; at += 5) chunks.push(bytes.subarray(at, Math.min(at + 5, end)));
        return Readable.from(chunks);
      },
    });
    return {storage, asked};
  }

  for (const rangeReads of [true, false]) {
    it(`gives the same bytes ${rangeReads ? 'from a backend that reads ranges' : 'from one that cannot, reading from the start'}`, async function () {
      const {storage, asked} = backend(rangeReads);
      for (const [offset, length] of [[0, 4], [7, 9], [30, undefined], [12, 1]] as const) {
        const read = Buffer.concat(await (await readRange(storage, 'k', {offset, ...(length === undefined ? {} : {length})})).toArray());
        expect(read.toString()).to.equal(bytes.subarray(offset, length === undefined ? undefined : offset + length).toString());
      }
      if (rangeReads) expect(asked[1]).to.deep.equal({offset: 7, length: 9});
      else expect(asked.every((options) => options.offset === undefined)).to.equal(true);
    });
  }
});

describe('storage decorators', function () {
  it('keep the optional operations a backend has, and add none it lacks', async function () {
    const names: string[] = [];
    const around = async <T>(call: {operation: string; run: () => Promise<T>}): Promise<T> => {
      names.push(call.operation);
      return call.run();
    };
    const plain = decorateStorage(oldBackend(['a']), around);
    expect(plain.listPage).to.equal(undefined);
    expect(plain.space).to.equal(undefined);
    const full = decorateStorage(oldBackend(['a'], {listPage: async () => ({objects: [info('a')]}), space: async () => undefined, abortStaleUploads: async () => []}), around);
    await full.listPage!();
    await full.space!();
    await full.abortStaleUploads!(new Date());
    expect(names).to.deep.equal(['listPage', 'space', 'abortStaleUploads']);
  });
});
