import {expect} from 'chai';

import type {StorageBackend} from '../../src/contracts/storage.js';
import {SynapseError} from '../../src/core/errors/index.js';
import {withRetries} from '../../src/core/storage/index.js';
import {tableBackend} from '../helpers/storage.js';

/** A backend whose list() fails with `failure` the first `times` calls, counting every call. */
function failingList(failure: unknown, times: number): {storage: StorageBackend; calls: () => number} {
  let calls = 0;
  const storage = tableBackend({
    async list() {
      calls++;
      if (calls <= times) throw failure;
      return [];
    },
  });
  return {storage, calls: () => calls};
}

const coded = (code: string) => Object.assign(new Error(code), {code});

describe('retries of idempotent storage calls', function () {
  const cases: Array<[string, unknown, number]> = [
    ['a stale NFS handle', coded('ESTALE'), 3],
    ['a reset connection', coded('ECONNRESET'), 3],
    ['a failure its backend marks retryable (an S3 503)', Object.assign(new Error('slow down'), {retryable: true}), 3],
    ['a missing object', coded('ENOENT'), 1],
    ['a full disk', coded('ENOSPC'), 1],
    ['a refusal', coded('EACCES'), 1],
    ['an error of ours, already explained', new SynapseError('E_STORAGE', {message: 'the storage did not answer'}), 1],
  ];
  for (const [what, failure, attempts] of cases) {
    it(`${attempts > 1 ? 'tries again after' : 'does not retry'} ${what}`, async function () {
      const {storage, calls} = failingList(failure, 99);
      const retries: number[] = [];
      const wrapped = withRetries(storage, {delaysMs: [1, 1], onRetry: (_what, _error, attempt) => retries.push(attempt)});
      await wrapped.list().catch(() => {});
      expect(calls()).to.equal(attempts);
      expect(retries).to.deep.equal(attempts > 1 ? [2, 3] : []);
    });
  }

  it('answers as soon as an attempt succeeds', async function () {
    const {storage, calls} = failingList(coded('ESTALE'), 1);
    expect(await withRetries(storage, {delaysMs: [1, 1]}).list()).to.deep.equal([]);
    expect(calls()).to.equal(2);
  });
});
