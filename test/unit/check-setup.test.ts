import {expect} from 'chai';
import {Readable} from 'node:stream';

import type {ObjectInfo, StorageBackend} from '../../src/contracts/storage.js';
import {checkStorageWritable} from '../../src/core/services/index.js';

/** A storage in memory whose chosen operation fails as a store without that permission does. */
function storageThatRefuses(refused: 'put' | 'get' | 'delete' | undefined): StorageBackend & {objects: Map<string, Buffer>} {
  const objects = new Map<string, Buffer>();
  const denied = (operation: string): never => {
    throw Object.assign(new Error(`S3 ${operation}: AccessDenied (HTTP 403): Access Denied`), {code: 'EACCES'});
  };
  return {
    scheme: 'memory',
    location: 'memory://test',
    capabilities: {atomicPut: true, conditionalPut: true, rangeReads: true},
    objects,
    async put(key: string, body: Readable): Promise<ObjectInfo> {
      if (refused === 'put') denied('PutObject');
      const data = Buffer.concat(await body.toArray());
      objects.set(key, data);
      return {key, size: data.length, modifiedAt: new Date()};
    },
    async get(key: string): Promise<Readable> {
      if (refused === 'get') denied('GetObject');
      return Readable.from([objects.get(key)!]);
    },
    async stat() {
      return undefined;
    },
    async list() {
      return [];
    },
    async delete(key: string): Promise<void> {
      if (refused === 'delete') denied('DeleteObject');
      objects.delete(key);
    },
  };
}

describe('check: the storage probe', function () {
  it('writes, reads back and deletes its probe, and leaves nothing', async function () {
    const storage = storageThatRefuses(undefined);
    const result = await checkStorageWritable(storage);
    expect(result).to.include({check: 'storage', status: 'ok'});
    expect(result.detail).to.include('write, read and delete work');
    expect(storage.objects.size).to.equal(0);
  });

  for (const [refused, step] of [['put', 'write'], ['get', 'read back'], ['delete', 'delete']] as const) {
    it(`names the step that failed: ${step}`, async function () {
      const result = await checkStorageWritable(storageThatRefuses(refused));
      expect(result.status).to.equal('failed');
      expect(result.detail).to.include(`unable to ${step} its probe`).and.include('AccessDenied');
      expect(result.suggestion).to.include(`permission to ${step}`);
    });
  }
});
