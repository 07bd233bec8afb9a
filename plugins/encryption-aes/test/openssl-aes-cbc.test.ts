import {expect} from 'chai';
import {execa} from 'execa';
import {randomBytes} from 'node:crypto';
import {Readable} from 'node:stream';
import {pipeline} from 'node:stream/promises';
import {Writable, type Transform} from 'node:stream';

import {opensslAesCbc} from '../src/openssl-aes-cbc.js';

const PASSWORD = 'correct horse battery staple £€ 0123456789';
const ITERATIONS = 10_000;

async function run(transform: Transform, input: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  // Feed in uneven chunks so block boundaries never line up with chunk boundaries.
  const pieces = [input.subarray(0, 5), input.subarray(5, 4099), input.subarray(4099)];
  await pipeline(Readable.from(pieces), transform, new Writable({write: (chunk, _encoding, callback) => (chunks.push(chunk), callback())}));
  return Buffer.concat(chunks);
}

function openssl(direction: '-e' | '-d', input: Buffer, password = PASSWORD, iterations = ITERATIONS) {
  return execa('openssl', ['enc', direction, '-aes-256-cbc', '-pbkdf2', '-md', 'sha256', '-iter', String(iterations), '-salt', '-pass', 'env:SYNAPSE_TEST_PASS'], {
    input,
    encoding: 'buffer',
    // Binary output: execa would otherwise drop a last byte that happens to be a newline (1 time in 256).
    stripFinalNewline: false,
    env: {SYNAPSE_TEST_PASS: password},
    reject: false,
  });
}

describe('AES-256-CBC provider (openssl enc compatible)', function () {
  const sizes = [0, 1, 15, 16, 17, 100_003, 1_048_576];
  for (const size of sizes) {
    it(`writes what openssl decrypts, and reads what openssl writes (${size} bytes)`, async function () {
      const plain = randomBytes(size);
      const ours = await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS}), plain);
      expect(ours.subarray(0, 8).toString('latin1')).to.equal('Salted__');
      expect(ours.length).to.equal(16 + (Math.floor(size / 16) + 1) * 16);
      const decryptedByOpenssl = await openssl('-d', ours);
      expect(decryptedByOpenssl.exitCode, String(decryptedByOpenssl.stderr)).to.equal(0);
      expect(Buffer.compare(decryptedByOpenssl.stdout as unknown as Buffer, plain)).to.equal(0);

      const encryptedByOpenssl = await openssl('-e', plain);
      // A failed or cut-short openssl run would otherwise surface as "bad decrypt" on our side.
      expect(encryptedByOpenssl.exitCode, String(encryptedByOpenssl.stderr)).to.equal(0);
      const theirs = encryptedByOpenssl.stdout as unknown as Buffer;
      expect(theirs.length, 'openssl wrote the whole ciphertext').to.equal(16 + (Math.floor(size / 16) + 1) * 16);
      const decryptedByUs = await run(opensslAesCbc.createDecryptStream(PASSWORD, opensslAesCbc.describe({iterations: ITERATIONS})), theirs);
      expect(Buffer.compare(decryptedByUs, plain)).to.equal(0);
    });
  }

  it('round-trips with openssl a plaintext whose last byte is a newline', async function () {
    const plain = Buffer.concat([randomBytes(1000), Buffer.from('\n')]);
    const decryptedByOpenssl = await openssl('-d', await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS}), plain));
    expect(Buffer.compare(decryptedByOpenssl.stdout as unknown as Buffer, plain)).to.equal(0);
  });

  it('uses a fresh salt each time', async function () {
    const plain = Buffer.from('same input');
    const first = await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS}), plain);
    const second = await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS}), plain);
    expect(first.subarray(8, 16).equals(second.subarray(8, 16))).to.equal(false);
  });

  it('uses exactly the salt it is given (the same bytes each time), which openssl reads, and refuses one of another length', async function () {
    const plain = randomBytes(1000);
    const salt = Buffer.from('0123456789abcdef', 'hex');
    const first = await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS, salt}), plain);
    const second = await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS, salt}), plain);
    expect(first.subarray(8, 16)).to.deep.equal(salt);
    expect(first.equals(second)).to.equal(true);
    const decryptedByOpenssl = await openssl('-d', first);
    expect(decryptedByOpenssl.exitCode, String(decryptedByOpenssl.stderr)).to.equal(0);
    expect(Buffer.compare(decryptedByOpenssl.stdout as unknown as Buffer, plain)).to.equal(0);
    const other = await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS, salt: Buffer.from('0123456789abcdee', 'hex')}), plain);
    expect(other.subarray(16).equals(first.subarray(16))).to.equal(false);
    for (const length of [0, 7, 9, 16]) {
      expect(() => opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS, salt: Buffer.alloc(length)}), String(length)).to.throw(RangeError, /8 bytes/);
    }
  });

  it('describes itself with 600000 PBKDF2-SHA256 iterations by default and never the key', function () {
    const parameters = opensslAesCbc.describe({});
    expect(parameters).to.deep.equal({provider: 'aes-256-cbc', cipher: 'aes-256-cbc', kdf: 'pbkdf2', kdfDigest: 'sha256', kdfIterations: 600000, container: 'openssl-salted'});
    expect(JSON.stringify(parameters)).not.to.include(PASSWORD);
  });

  const failures: Array<[string, (encrypted: Buffer) => Buffer, string | RegExp]> = [
    ['a file that is not openssl output', () => Buffer.from('plain text that is long enough to pass the header'), 'ERR_NOT_SALTED'],
    ['a file cut inside its header', (encrypted) => encrypted.subarray(0, 10), 'ERR_TRUNCATED'],
    ['a file cut inside its last block', (encrypted) => encrypted.subarray(0, encrypted.length - 5), /ERR_BAD_DECRYPT|ERR_OSSL/],
  ];
  for (const [label, damage, code] of failures) {
    it(`fails on ${label}`, async function () {
      const encrypted = await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS}), randomBytes(1000));
      let failure: unknown;
      try {
        await run(opensslAesCbc.createDecryptStream(PASSWORD, opensslAesCbc.describe({iterations: ITERATIONS})), damage(encrypted));
      } catch (error) {
        failure = error;
      }
      expect((failure as NodeJS.ErrnoException)?.code).to.match(code instanceof RegExp ? code : new RegExp(`^${code}$`));
    });
  }

  it('behaves like openssl on a wrong key, and never shows the key', async function () {
    for (let attempt = 0; attempt < 8; attempt++) {
      const encrypted = await run(opensslAesCbc.createEncryptStream(PASSWORD, {iterations: ITERATIONS}), randomBytes(1000));
      const theirs = await openssl('-d', encrypted, 'a different key');
      let ours: Buffer | undefined;
      let failure: Error | undefined;
      try {
        ours = await run(opensslAesCbc.createDecryptStream('a different key', opensslAesCbc.describe({iterations: ITERATIONS})), encrypted);
      } catch (error) {
        failure = error as Error;
      }
      // CBC padding looks valid for a wrong key about once in 256 tries; then both must yield the same bytes.
      if (theirs.exitCode === 0) {
        expect(Buffer.compare(ours!, theirs.stdout as unknown as Buffer)).to.equal(0);
      } else {
        expect(Buffer.from(theirs.stderr as unknown as Uint8Array).toString()).to.match(/bad decrypt/);
        expect((failure as NodeJS.ErrnoException).code).to.equal('ERR_BAD_DECRYPT');
        expect(failure!.message).not.to.include('different key');
      }
    }
  });

  it('refuses parameters it did not write', function () {
    expect(() => opensslAesCbc.createDecryptStream(PASSWORD, {...opensslAesCbc.describe({}), cipher: 'aes-128-gcm'})).to.throw(/unsupported/);
  });
});
