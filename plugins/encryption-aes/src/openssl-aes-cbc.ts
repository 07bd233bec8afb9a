import {createCipheriv, createDecipheriv, createHash, pbkdf2, randomBytes, type Cipher, type Decipher} from 'node:crypto';
import {Transform, type TransformCallback} from 'node:stream';
import {promisify} from 'node:util';

import type {CipherParameters, EncryptOptions, EncryptionProvider} from 'synapse-backup/plugin-api';

const derive = promisify(pbkdf2);

/** `openssl enc` writes this, then an 8-byte salt, then the ciphertext. */
const MAGIC = Buffer.from('Salted__', 'latin1');
const SALT_LENGTH = 8;
const HEADER_LENGTH = MAGIC.length + SALT_LENGTH;
const KEY_LENGTH = 32;
const IV_LENGTH = 16;
const CIPHER = 'aes-256-cbc';
const KDF_DIGEST = 'sha256';

/** OWASP's 2023 figure for PBKDF2-HMAC-SHA256. */
export const DEFAULT_ITERATIONS = 600_000;

/**
 * The last derivation, keyed by a hash of its inputs: a restore decrypts the same file twice (the
 * key check on its first block, then the load), and PBKDF2 at 600000 iterations costs a few hundred
 * ms of CPU each time. One entry, so a long-lived process holds at most one derived key.
 */
let lastDerivation: {readonly id: string; readonly result: Promise<{key: Buffer; iv: Buffer}>} | undefined;

/** Key and IV exactly as `openssl enc -pbkdf2 -md sha256 -iter N` derives them from the password. */
function deriveKeyAndIv(password: string, salt: Buffer, iterations: number): Promise<{key: Buffer; iv: Buffer}> {
  const id = createHash('sha256').update(password, 'utf8').update('\0').update(salt).update(`\0${iterations}`).digest('hex');
  if (lastDerivation?.id === id) return lastDerivation.result;
  const result = derive(Buffer.from(password, 'utf8'), salt, iterations, KEY_LENGTH + IV_LENGTH, KDF_DIGEST).then((material) => ({
    key: material.subarray(0, KEY_LENGTH),
    iv: material.subarray(KEY_LENGTH),
  }));
  lastDerivation = {id, result};
  // A failed derivation is not remembered.
  result.catch(() => {
    if (lastDerivation?.id === id) lastDerivation = undefined;
  });
  return result;
}

function checkIterations(iterations: number): number {
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError(`PBKDF2 iterations must be a positive integer, got ${iterations}`);
  return iterations;
}

class EncryptStream extends Transform {
  readonly #password: string;
  readonly #iterations: number;
  readonly #salt: Buffer | undefined;
  #cipher: Cipher | undefined;

  constructor(password: string, iterations: number, salt: Uint8Array | undefined) {
    super();
    this.#password = password;
    this.#iterations = checkIterations(iterations);
    if (salt !== undefined && salt.length !== SALT_LENGTH) throw new RangeError(`the salt of \`openssl enc\` is ${SALT_LENGTH} bytes, got ${salt.length}`);
    this.#salt = salt === undefined ? undefined : Buffer.from(salt);
  }

  override _construct(callback: (error?: Error | null) => void): void {
    const salt = this.#salt ?? randomBytes(SALT_LENGTH);
    deriveKeyAndIv(this.#password, salt, this.#iterations).then(({key, iv}) => {
      this.#cipher = createCipheriv(CIPHER, key, iv);
      this.push(Buffer.concat([MAGIC, salt]));
      callback();
    }, callback);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, this.#cipher!.update(chunk));
  }

  override _flush(callback: TransformCallback): void {
    callback(null, this.#cipher!.final());
  }
}

class DecryptStream extends Transform {
  readonly #password: string;
  readonly #iterations: number;
  #header: Buffer = Buffer.alloc(0);
  #decipher: Decipher | undefined;

  constructor(password: string, iterations: number) {
    super();
    this.#password = password;
    this.#iterations = checkIterations(iterations);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#decipher) {
      callback(null, this.#decipher.update(chunk));
      return;
    }
    this.#header = Buffer.concat([this.#header, chunk]);
    if (this.#header.length < HEADER_LENGTH) {
      callback();
      return;
    }
    if (!this.#header.subarray(0, MAGIC.length).equals(MAGIC)) {
      callback(Object.assign(new Error("not an OpenSSL 'Salted__' file"), {code: 'ERR_NOT_SALTED'}));
      return;
    }
    const salt = this.#header.subarray(MAGIC.length, HEADER_LENGTH);
    const rest = this.#header.subarray(HEADER_LENGTH);
    deriveKeyAndIv(this.#password, salt, this.#iterations).then(({key, iv}) => {
      this.#decipher = createDecipheriv(CIPHER, key, iv);
      callback(null, this.#decipher.update(rest));
    }, callback);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.#decipher) {
      callback(Object.assign(new Error('encrypted data ends inside its header'), {code: 'ERR_TRUNCATED'}));
      return;
    }
    try {
      callback(null, this.#decipher.final());
    } catch {
      // OpenSSL says "bad decrypt" for both a wrong key and damaged data; the caller can tell them apart by checksum.
      callback(Object.assign(new Error('bad decrypt (wrong key or damaged data)'), {code: 'ERR_BAD_DECRYPT'}));
    }
  }
}

export const opensslAesCbc: EncryptionProvider = {
  id: CIPHER,
  description: 'AES-256-CBC, key and IV from PBKDF2-HMAC-SHA256; the file is `openssl enc -aes-256-cbc -pbkdf2 -md sha256 -iter N -salt` output.',
  fileSuffix: '.enc',
  defaultIterations: DEFAULT_ITERATIONS,
  describe(options: EncryptOptions): CipherParameters {
    return {
      provider: CIPHER,
      cipher: CIPHER,
      kdf: 'pbkdf2',
      kdfDigest: KDF_DIGEST,
      kdfIterations: checkIterations(options.iterations ?? DEFAULT_ITERATIONS),
      container: 'openssl-salted',
    };
  },
  createEncryptStream(key: string, options: EncryptOptions): Transform {
    return new EncryptStream(key, options.iterations ?? DEFAULT_ITERATIONS, options.salt);
  },
  createDecryptStream(key: string, parameters: CipherParameters): Transform {
    if (parameters.cipher !== CIPHER || parameters.kdf !== 'pbkdf2' || parameters.kdfDigest !== KDF_DIGEST || parameters.container !== 'openssl-salted') {
      throw new Error(`unsupported cipher parameters ${parameters.cipher}/${parameters.kdf}-${parameters.kdfDigest}/${parameters.container}`);
    }
    return new DecryptStream(key, parameters.kdfIterations);
  },
};
