import {expect} from 'chai';
import {createHash, randomBytes} from 'node:crypto';
import {Readable} from 'node:stream';

import type {StorageBackend} from '../contracts/storage.js';

export interface StorageContractOptions {
  /** A new, empty backend for each test. */
  readonly create: () => Promise<StorageBackend>;
  /** Removes what `create` made; called after each test. */
  readonly dispose?: (storage: StorageBackend) => Promise<void>;
  /**
   * Who may read an object, as the backend's medium sees it: 'owner' or 'others'. Given, the suite
   * checks that a private put is readable by its owner only (a 0600 file, a private ACL).
   */
  readonly readableBy?: (storage: StorageBackend, key: string) => Promise<'owner' | 'others'>;
}

/** A body that sends `head`, then waits for `release()` before it ends: a put caught midway. */
function heldStream(head: Buffer): {stream: Readable; release: () => void} {
  let release = (): void => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let sent = false;
  const stream = new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push(head);
      void released.then(() => this.push(null));
    },
  });
  return {stream, release};
}

const STAGING_KEY = /^(.+)\.[0-9a-f]{8,64}\.partial$/;

/**
 * The keys that are objects, and checks that the rest are staging objects of `failedKey`: a failed
 * put should remove what it staged, but on a network file system that delete may itself fail (or
 * the server may still hold the file open), and a staging object is what cleanup removes.
 */
async function objectsBesidesStagingOf(storage: StorageBackend, failedKey: string): Promise<string[]> {
  const keys = (await storage.list()).map((object) => object.key);
  for (const key of keys.filter((candidate) => STAGING_KEY.test(candidate))) expect(STAGING_KEY.exec(key)![1], `staging object ${key}`).to.equal(failedKey);
  return keys.filter((key) => !STAGING_KEY.test(key)).sort();
}

async function readAll(stream: Readable): Promise<Buffer> {
  return Buffer.concat(await stream.toArray());
}

function failingStream(prefix: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (sent) {
        this.destroy(new Error('source failed midway'));
        return;
      }
      sent = true;
      this.push(prefix);
    },
  });
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The behaviour every storage backend must show, as a mocha suite. A storage plugin's tests call
 * it with a factory for its backend against a real server or mount:
 *
 *   describeStorageContract('local directory', {create: () => LocalDirectoryStorage.open(dir)});
 */
export function describeStorageContract(name: string, options: StorageContractOptions): void {
  describe(`storage contract: ${name}`, function () {
    let storage: StorageBackend;

    beforeEach(async function () {
      storage = await options.create();
    });

    afterEach(async function () {
      if (storage) {
        await storage.close?.();
        await options.dispose?.(storage);
      }
    });

    it('declares its capabilities and a location', function () {
      expect(storage.scheme).to.be.a('string').and.not.empty;
      expect(storage.location).to.be.a('string').and.not.empty;
      for (const capability of ['atomicPut', 'conditionalPut', 'rangeReads'] as const) expect(storage.capabilities[capability]).to.be.a('boolean');
      expect(storage.capabilities.conditionalReplace).to.be.oneOf([undefined, true, false]);
    });

    it('stores a stream and returns the same bytes', async function () {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const info = await storage.put('object.bin', Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
      expect(info.key).to.equal('object.bin');
      expect(info.size).to.equal(data.length);
      const back = await readAll(await storage.get('object.bin'));
      expect(createHash('sha256').update(back).digest('hex')).to.equal(createHash('sha256').update(data).digest('hex'));
    });

    it('stores an empty object', async function () {
      await storage.put('empty', Readable.from([]));
      expect((await storage.stat('empty'))?.size).to.equal(0);
      expect((await readAll(await storage.get('empty'))).length).to.equal(0);
    });

    it('reads a range', async function () {
      const data = Buffer.from('0123456789abcdefghij');
      await storage.put('range', Readable.from([data]));
      expect((await readAll(await storage.get('range', {offset: 5, length: 4}))).toString()).to.equal('5678');
      expect((await readAll(await storage.get('range', {offset: 18}))).toString()).to.equal('ij');
      expect((await readAll(await storage.get('range', {offset: 0, length: 3}))).toString()).to.equal('012');
    });

    it('stats objects, and says undefined for a missing one', async function () {
      await storage.put('present', Readable.from([Buffer.from('abc')]));
      const info = await storage.stat('present');
      expect(info?.size).to.equal(3);
      expect(info?.modifiedAt).to.be.instanceOf(Date);
      expect(await storage.stat('absent')).to.equal(undefined);
    });

    it("rejects get() of a missing key with code 'ENOENT'", async function () {
      let failure: unknown;
      try {
        await readAll(await storage.get('absent'));
      } catch (error) {
        failure = error;
      }
      expect(errorCode(failure)).to.equal('ENOENT');
    });

    it('lists objects by prefix', async function () {
      for (const key of ['backup_a', 'backup_b', 'other']) await storage.put(key, Readable.from([Buffer.from(key)]));
      expect((await storage.list('backup_')).map((object) => object.key).sort()).to.deep.equal(['backup_a', 'backup_b']);
      expect((await storage.list()).map((object) => object.key).sort()).to.deep.equal(['backup_a', 'backup_b', 'other']);
      const listed = (await storage.list('other'))[0];
      expect(listed?.size).to.equal(5);
    });

    it('replaces an object by default', async function () {
      await storage.put('replace', Readable.from([Buffer.from('first')]));
      await storage.put('replace', Readable.from([Buffer.from('second')]));
      expect((await readAll(await storage.get('replace'))).toString()).to.equal('second');
    });

    it("refuses to replace with ifNotExists, with code 'EEXIST', leaving the original (when it declares conditionalPut)", async function () {
      if (!storage.capabilities.conditionalPut) this.skip();
      await storage.put('once', Readable.from([Buffer.from('original')]));
      let failure: unknown;
      try {
        await storage.put('once', Readable.from([Buffer.from('intruder')]), {ifNotExists: true});
      } catch (error) {
        failure = error;
      }
      expect(errorCode(failure)).to.equal('EEXIST');
      expect((await readAll(await storage.get('once'))).toString()).to.equal('original');
      expect((await storage.list()).map((object) => object.key)).to.deep.equal(['once']);
    });

    it('lets exactly one of many concurrent ifNotExists puts win, and keeps its bytes whole (when it declares conditionalPut)', async function () {
      if (!storage.capabilities.conditionalPut) this.skip();
      const bodies = Array.from({length: 8}, (_, index) => Buffer.concat([Buffer.from(`writer ${index}:`), randomBytes(64 * 1024)]));
      const outcomes = await Promise.allSettled(bodies.map((body) => storage.put('contested', Readable.from([body]), {ifNotExists: true})));
      const winners = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      expect(winners).to.have.length(1);
      for (const outcome of outcomes) if (outcome.status === 'rejected') expect(errorCode(outcome.reason)).to.equal('EEXIST');
      const stored = await readAll(await storage.get('contested'));
      expect(bodies.some((body) => body.equals(stored)), 'the stored object is one writer\'s whole body').to.equal(true);
      expect((await storage.list()).map((object) => object.key)).to.deep.equal(['contested']);
    });

    it('never shows a put under its final key before the put is done (when it declares atomicPut), and names staging objects as the contract says', async function () {
      if (!storage.capabilities.atomicPut) this.skip();
      const {stream, release} = heldStream(randomBytes(128 * 1024));
      const putting = storage.put('midway', stream);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await storage.stat('midway')).to.equal(undefined);
      const during = (await storage.list()).map((object) => object.key);
      expect(during).not.to.include('midway');
      for (const key of during) expect(key, 'a staging object').to.match(STAGING_KEY).and.satisfy((staging: string) => STAGING_KEY.exec(staging)![1] === 'midway');
      release();
      await putting;
      expect((await storage.list()).map((object) => object.key), 'no staging object is left').to.deep.equal(['midway']);
    });

    it('makes a private object readable by its owner only', async function () {
      if (!options.readableBy) this.skip();
      await storage.put('private', Readable.from([Buffer.from('secret')]), {private: true});
      expect(await options.readableBy!(storage, 'private')).to.equal('owner');
    });

    it('stops a get when its signal is aborted', async function () {
      await storage.put('large', Readable.from([randomBytes(4 * 1024 * 1024)]));
      const controller = new AbortController();
      const stream = await storage.get('large', {signal: controller.signal});
      controller.abort();
      let failure: unknown;
      try {
        await readAll(stream);
      } catch (error) {
        failure = error;
      }
      expect((failure as Error | undefined)?.name).to.equal('AbortError');
    });

    it('publishes nothing when the source stream fails midway, and leaves other objects alone', async function () {
      await storage.put('earlier', Readable.from([Buffer.from('keep me')]));
      let failure: unknown;
      try {
        await storage.put('broken', failingStream(randomBytes(256 * 1024)));
      } catch (error) {
        failure = error;
      }
      expect(failure).to.be.instanceOf(Error);
      expect(await storage.stat('broken')).to.equal(undefined);
      expect(await objectsBesidesStagingOf(storage, 'broken')).to.deep.equal(['earlier']);
      expect((await readAll(await storage.get('earlier'))).toString()).to.equal('keep me');
    });

    it('stops a put when its signal is aborted, publishing nothing', async function () {
      const controller = new AbortController();
      const endless = new Readable({
        read() {
          this.push(randomBytes(64 * 1024));
        },
      });
      const putting = storage.put('aborted', endless, {signal: controller.signal});
      setTimeout(() => controller.abort(), 50);
      let failure: unknown;
      try {
        await putting;
      } catch (error) {
        failure = error;
      }
      expect(failure).to.be.instanceOf(Error);
      expect(await storage.stat('aborted')).to.equal(undefined);
      expect(await objectsBesidesStagingOf(storage, 'aborted')).to.deep.equal([]);
    });

    it('deletes objects, and deleting a missing key is not an error', async function () {
      await storage.put('doomed', Readable.from([Buffer.from('x')]));
      await storage.delete('doomed');
      expect(await storage.stat('doomed')).to.equal(undefined);
      await storage.delete('doomed');
    });

    describe('plugin API 1.3: areas, pages, versions and conditional changes (when it has listPage)', function () {
      beforeEach(function () {
        if (!storage.listPage) this.skip();
      });

      const put = (key: string, text: string, options = {}) => storage.put(key, Readable.from([Buffer.from(text)]), options);
      const keysOf = (objects: readonly {key: string}[]) => objects.map((object) => object.key);
      async function failureOf(attempt: () => Promise<unknown>): Promise<string | undefined> {
        try {
          await attempt();
        } catch (error) {
          return errorCode(error) ?? (error as Error).message;
        }
        return undefined;
      }

      it('keeps keys in areas apart: a listing sees its own area only, never one below or above', async function () {
        for (const key of ['top', 'wal/000000010000000000000001', 'wal/000000010000000000000002', 'wal/history/00000002.history']) await put(key, key);
        expect(keysOf(await storage.list()).sort()).to.deep.equal(['top']);
        expect(keysOf(await storage.list('wal/')).sort()).to.deep.equal(['wal/000000010000000000000001', 'wal/000000010000000000000002']);
        expect(keysOf(await storage.list('wal/0000000100000000000000')).sort()).to.deep.equal(['wal/000000010000000000000001', 'wal/000000010000000000000002']);
        expect(keysOf(await storage.list('wal/history/'))).to.deep.equal(['wal/history/00000002.history']);
        expect(keysOf(await storage.list('nothing-here/'))).to.deep.equal([]);
        expect(keysOf((await storage.listPage!({prefix: 'wal/'})).objects)).to.deep.equal(['wal/000000010000000000000001', 'wal/000000010000000000000002']);
        expect((await readAll(await storage.get('wal/history/00000002.history'))).toString()).to.equal('wal/history/00000002.history');
        expect((await storage.stat('wal/000000010000000000000002'))?.size).to.equal('wal/000000010000000000000002'.length);
        await storage.delete('wal/000000010000000000000001');
        expect(keysOf(await storage.list('wal/'))).to.deep.equal(['wal/000000010000000000000002']);
        expect(await storage.stat('elsewhere/absent')).to.equal(undefined);
        expect(await failureOf(() => storage.get('elsewhere/absent'))).to.equal('ENOENT');
      });

      it('lists a page at a time, in key order, from where the last page ended', async function () {
        const keys = Array.from({length: 23}, (_, index) => `k${String(index).padStart(2, '0')}`);
        await Promise.all([...keys.map((key) => put(key, key)), put('wal/k99', 'another area')]);
        const seen: string[] = [];
        let pages = 0;
        let startAfter: string | undefined;
        do {
          const page = await storage.listPage!({limit: 10, ...(startAfter === undefined ? {} : {startAfter})});
          expect(page.objects.length).to.be.at.most(10);
          seen.push(...keysOf(page.objects));
          startAfter = page.next;
          pages++;
        } while (startAfter !== undefined && pages < 20);
        expect(seen).to.deep.equal(keys);
        expect(pages).to.be.at.least(3);
        expect(keysOf((await storage.listPage!({startAfter: 'k19'})).objects)).to.deep.equal(['k20', 'k21', 'k22']);
        expect(keysOf((await storage.listPage!({prefix: 'k1'})).objects)).to.deep.equal(keys.slice(10, 20));
      });

      it('gives each version of an object an etag, another one when it is replaced', async function () {
        const first = await put('versioned', 'first');
        expect(first.etag).to.be.a('string').and.not.empty;
        expect((await storage.stat('versioned'))?.etag).to.equal(first.etag);
        expect((await storage.list('versioned'))[0]?.etag).to.equal(first.etag);
        const second = await put('versioned', 'second, longer');
        expect(second.etag).to.be.a('string').and.not.equal(first.etag);
      });

      it("deletes only the version named by ifMatch, and refuses another with 'ECHANGED'", async function () {
        const old = await put('guarded', 'old');
        const current = await put('guarded', 'current version');
        expect(await failureOf(() => storage.delete('guarded', {ifMatch: old.etag!}))).to.equal('ECHANGED');
        expect((await readAll(await storage.get('guarded'))).toString()).to.equal('current version');
        await storage.delete('guarded', {ifMatch: current.etag!});
        expect(await storage.stat('guarded')).to.equal(undefined);
        await storage.delete('guarded', {ifMatch: current.etag!});
        expect(await objectsBesidesStagingOf(storage, 'guarded')).to.deep.equal([]);
      });

      it("replaces only the version named by ifMatch, refuses another or a missing one with 'ECHANGED'", async function () {
        const old = await put('guarded', 'old');
        const current = await put('guarded', 'current version');
        expect(await failureOf(() => put('guarded', 'intruder', {ifMatch: old.etag!}))).to.equal('ECHANGED');
        expect((await readAll(await storage.get('guarded'))).toString()).to.equal('current version');
        const next = await put('guarded', 'the next version', {ifMatch: current.etag!});
        expect(next.etag).to.not.equal(current.etag);
        expect((await readAll(await storage.get('guarded'))).toString()).to.equal('the next version');
        expect(await failureOf(() => put('absent', 'x', {ifMatch: current.etag!}))).to.equal('ECHANGED');
        expect(await storage.stat('absent')).to.equal(undefined);
        expect(await objectsBesidesStagingOf(storage, 'guarded')).to.deep.equal(['guarded']);
      });

      it('lets exactly one of many concurrent replaces of one version win (when it declares conditionalReplace)', async function () {
        if (!storage.capabilities.conditionalReplace) this.skip();
        const base = await put('contested', 'base');
        const bodies = Array.from({length: 6}, (_, index) => `writer ${index}`);
        const outcomes = await Promise.allSettled(bodies.map((body) => put('contested', body, {ifMatch: base.etag!})));
        const winners = outcomes.filter((outcome) => outcome.status === 'fulfilled');
        expect(winners, JSON.stringify(outcomes.map((outcome) => outcome.status === 'rejected' ? errorCode(outcome.reason) : 'won'))).to.have.length(1);
        for (const outcome of outcomes) if (outcome.status === 'rejected') expect(errorCode(outcome.reason)).to.equal('ECHANGED');
        expect(bodies).to.include((await readAll(await storage.get('contested'))).toString());
      });
    });

    it('reports its free space as whole bytes no larger than its size, or says it cannot tell (when it has space())', async function () {
      if (!storage.space) this.skip();
      const space = await storage.space!();
      if (space === undefined) return;
      expect(Number.isSafeInteger(space.freeBytes) && space.freeBytes >= 0, `freeBytes ${space.freeBytes}`).to.equal(true);
      expect(Number.isSafeInteger(space.totalBytes) && space.totalBytes > 0, `totalBytes ${space.totalBytes}`).to.equal(true);
      expect(space.freeBytes).to.be.at.most(space.totalBytes);
    });
  });
}
