import {expect} from 'chai';
import {createHash, createHmac, pbkdf2Sync} from 'node:crypto';

import {Secret} from '../../src/core/secrets/index.js';
import {WAL_MASTER_SALT, WalKeys} from '../../src/core/wal/index.js';

describe('the WAL archive keys', function () {
  const encryption = {key: new Secret('a passphrase long enough to be accepted, 0123456789'), provider: 'aes-256-cbc', iterations: 1000};
  const sha = createHash('sha256').update('segment').digest('hex');

  it('derives the encryption passphrase as the README recipe does: PBKDF2, then HMAC "encryption"', async function () {
    const master = pbkdf2Sync(encryption.key.reveal(), WAL_MASTER_SALT, 1000, 32, 'sha256');
    expect(await new WalKeys(encryption).encryptionPassphrase()).to.equal(createHmac('sha256', master).update('encryption').digest('hex'));
  });

  it('tags a file by name, size and content: each of them changes the tag', async function () {
    const keys = new WalKeys(encryption);
    const tag = await keys.tagFor('000000010000000000000001', 7, sha);
    expect(tag).to.match(/^[0-9a-f]{64}$/);
    expect(await keys.tagMatches(tag, '000000010000000000000001', 7, sha)).to.equal(true);
    expect(await keys.tagMatches(tag, '000000010000000000000002', 7, sha)).to.equal(false);
    expect(await keys.tagMatches(tag, '000000010000000000000001', 8, sha)).to.equal(false);
    expect(await keys.tagMatches(tag, '000000010000000000000001', 7, sha.replace(/^./, sha[0] === '0' ? '1' : '0'))).to.equal(false);
    expect(await new WalKeys({...encryption, key: new Secret('another passphrase long enough to be accepted, 012')}).tagMatches(tag, '000000010000000000000001', 7, sha)).to.equal(false);
  });

  it('reuses a derivation started earlier in the process (bin/run.js starts one) only for the same passphrase and iterations', async function () {
    const expected = (passphrase: string, iterations: number): string => createHmac('sha256', pbkdf2Sync(passphrase, WAL_MASTER_SALT, iterations, 32, 'sha256')).update('encryption').digest('hex');
    const other = {...encryption, key: new Secret('another passphrase long enough to be accepted, 012')};
    const moreIterations = {...encryption, iterations: 1001};
    // Each right after another's, which a cache keyed on too little would hand back.
    for (const settings of [encryption, other, encryption, moreIterations, encryption]) {
      expect(await new WalKeys(settings).encryptionPassphrase(), `${settings.iterations}`).to.equal(expected(settings.key.reveal(), settings.iterations));
    }
  });

  it('without a key tags by SHA-256 alone, which finds damage, and says it authenticates nothing', async function () {
    const keys = new WalKeys(undefined);
    expect(keys.authenticated).to.equal(false);
    expect(await keys.tagFor('000000010000000000000001', 7, sha)).to.equal(sha);
    expect(await keys.documentMac('{}')).to.equal(undefined);
    await keys.encryptionPassphrase().then(
      () => expect.fail('no passphrase without a key'),
      (error: Error) => expect(error.message).to.include('no key'),
    );
  });
});
