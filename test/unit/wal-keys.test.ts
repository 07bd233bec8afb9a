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

  it('tags a file in format 1 by name, size and content: each of them changes the tag', async function () {
    const keys = new WalKeys(encryption);
    const hex = await keys.plaintextTag('000000010000000000000001', 7, sha);
    expect(hex).to.match(/^[0-9a-f]{64}$/);
    const tag = {format: 1, hex} as const;
    const read = {bytes: 7, sha256: sha};
    expect(await keys.tagMatches(tag, '000000010000000000000001', read)).to.equal(true);
    expect(await keys.tagMatches(tag, '000000010000000000000002', read)).to.equal(false);
    expect(await keys.tagMatches(tag, '000000010000000000000001', {...read, bytes: 8})).to.equal(false);
    expect(await keys.tagMatches(tag, '000000010000000000000001', {...read, sha256: sha.replace(/^./, sha[0] === '0' ? '1' : '0')})).to.equal(false);
    expect(await new WalKeys({...encryption, key: new Secret('another passphrase long enough to be accepted, 012')}).tagMatches(tag, '000000010000000000000001', read)).to.equal(false);
    // The same digest read as format 2 is no tag of that format.
    expect(await keys.tagMatches({format: 2, hex}, '000000010000000000000001', read)).to.equal(false);
    expect(await keys.tagMatches({format: 2, hex}, '000000010000000000000001', {...read, storedTag: 'ab'.repeat(32)})).to.equal(false);
  });

  it('tags a file in format 2 by a MAC of its name and stored bytes, keyed from the passphrase', async function () {
    const keys = new WalKeys(encryption);
    const master = pbkdf2Sync(encryption.key.reveal(), WAL_MASTER_SALT, 1000, 32, 'sha256');
    const mac = createHmac('sha256', master).update('authentication').digest();
    const hash = await keys.storedTagHash('000000010000000000000001');
    const hex = hash.update('stored ').update('bytes').digest('hex');
    expect(hex).to.equal(createHmac('sha256', mac).update('synapse-backup wal file v2\n000000010000000000000001\nstored bytes').digest('hex'));
    const tag = {format: 2, hex} as const;
    expect(await keys.tagMatches(tag, '000000010000000000000001', {bytes: 1, sha256: sha, storedTag: hex})).to.equal(true);
    expect(await keys.tagMatches(tag, '000000010000000000000001', {bytes: 1, sha256: sha, storedTag: (await keys.storedTagHash('000000010000000000000002')).update('stored bytes').digest('hex')})).to.equal(false);
    expect(await keys.tagMatches(tag, '000000010000000000000001', {bytes: 1, sha256: sha})).to.equal(false);
    const other = new WalKeys({...encryption, key: new Secret('another passphrase long enough to be accepted, 012')});
    expect((await other.storedTagHash('000000010000000000000001')).update('stored bytes').digest('hex')).to.not.equal(hex);
  });

  it('salts a file by a MAC of its name and compressed content: the same file the same salt, any change another', async function () {
    const keys = new WalKeys(encryption);
    const salt = await keys.encryptionSalt('000000010000000000000001', [Buffer.from('compressed '), Buffer.from('frames')]);
    expect(salt).to.have.length(8);
    expect(await keys.encryptionSalt('000000010000000000000001', [Buffer.from('compressed frames')])).to.deep.equal(salt);
    expect(await keys.encryptionSalt('000000010000000000000002', [Buffer.from('compressed frames')])).to.not.deep.equal(salt);
    expect(await keys.encryptionSalt('000000010000000000000001', [Buffer.from('compressed frameS')])).to.not.deep.equal(salt);
    expect(await new WalKeys({...encryption, key: new Secret('another passphrase long enough to be accepted, 012')}).encryptionSalt('000000010000000000000001', [Buffer.from('compressed frames')])).to.not.deep.equal(salt);
    // Not the tag's MAC: the salt, written in the clear, says nothing of the tag.
    expect(salt).to.not.deep.equal(Buffer.from((await keys.storedTagHash('000000010000000000000001')).update('compressed frames').digest('hex'), 'hex').subarray(0, 8));
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
    expect(await keys.plaintextTag('000000010000000000000001', 7, sha)).to.equal(sha);
    expect((await keys.storedTagHash('000000010000000000000001')).update('stored').digest('hex')).to.equal(createHash('sha256').update('synapse-backup wal file v2\n000000010000000000000001\nstored').digest('hex'));
    await keys.encryptionSalt('000000010000000000000001', []).then(
      () => expect.fail('no salt without a key'),
      (error: Error) => expect(error.message).to.include('no key'),
    );
    expect(await keys.documentMac('{}')).to.equal(undefined);
    await keys.encryptionPassphrase().then(
      () => expect.fail('no passphrase without a key'),
      (error: Error) => expect(error.message).to.include('no key'),
    );
  });
});
