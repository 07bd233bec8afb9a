import {createHash, createHmac, pbkdf2, timingSafeEqual, type Hash, type Hmac} from 'node:crypto';
import {promisify} from 'node:util';

import type {EncryptionSettings} from '../config/index.js';
import type {WalTag} from './wal-file-names.js';

const derive = promisify(pbkdf2);

/** The PBKDF2 salt of the archive's master key: a label of its own, so it is no other key of ours. */
export const WAL_MASTER_SALT = 'synapse-backup/wal/v1';

/**
 * The iterations of the per-file key derivation inside each archived file's `Salted__` header.
 * One: the passphrase it stretches is the 256-bit encryption key below, not a person's passphrase,
 * so stretching adds nothing, while 600000 iterations per 16 MiB segment would cost more CPU than
 * compressing it (pgBackRest encrypts its archive with a random passphrase the same way). Each file
 * still has its own random salt, and so its own AES key and IV.
 */
export const WAL_FILE_KDF_ITERATIONS = 1;

/** The salt of `openssl enc`'s `Salted__` header: 8 bytes. */
export const ENCRYPTION_SALT_BYTES = 8;

type KeyMaterial = {readonly encryption: string; readonly mac: Buffer};

/**
 * The last derivation, by a hash of its inputs: `wal push` starts it before the CLI loads (see
 * bin/run.js), on a core the loading leaves idle, and the command's own WalKeys finds it there.
 * One entry, so a process holds at most one archive's keys; a failed one is not remembered.
 */
let lastDerivation: {readonly id: string; readonly material: Promise<KeyMaterial>} | undefined;

function archiveKeyMaterial(passphrase: string, iterations: number): Promise<KeyMaterial> {
  const id = createHash('sha256').update(passphrase, 'utf8').update(`\0${iterations}`).digest('hex');
  if (lastDerivation?.id === id) return lastDerivation.material;
  const material = derive(Buffer.from(passphrase, 'utf8'), Buffer.from(WAL_MASTER_SALT, 'utf8'), iterations, 32, 'sha256').then((master) => ({
    encryption: createHmac('sha256', master).update('encryption').digest('hex'),
    mac: createHmac('sha256', master).update('authentication').digest(),
  }));
  lastDerivation = {id, material};
  material.catch(() => {
    if (lastDerivation?.id === id) lastDerivation = undefined;
  });
  return material;
}

/**
 * The keys of the WAL archive, derived from the configured passphrase once per run (one PBKDF2,
 * however many files are pushed or fetched):
 *   master     = PBKDF2-SHA256(passphrase, "synapse-backup/wal/v1", BACKUP_KDF_ITERATIONS, 32)
 *   encryption = hex(HMAC-SHA256(master, "encryption")), the passphrase of every file's
 *                `openssl enc -aes-256-cbc -pbkdf2 -iter 1 -md sha256`
 *   mac        = HMAC-SHA256(master, "authentication"), which keys each file's tag (see WalTag):
 *     format 1: HMAC(mac, "synapse-backup wal file v1\n" name "\n" size "\n" sha256-hex "\n")
 *     format 2: HMAC(mac, "synapse-backup wal file v2\n" name "\n" stored bytes)
 *   and the salt of a format-2 file's encryption (see encryptionSalt).
 * Without a key nothing is encrypted and the tag is a plain SHA-256 of the same text: it finds
 * damage, not forgery (format 1 then uses the file's own SHA-256).
 */
export class WalKeys {
  readonly #material: Promise<KeyMaterial> | undefined;

  constructor(encryption: EncryptionSettings | undefined) {
    this.#material = encryption ? archiveKeyMaterial(encryption.key.reveal(), encryption.iterations) : undefined;
  }

  get authenticated(): boolean {
    return this.#material !== undefined;
  }

  /** The passphrase each archived file is encrypted with; only where a key is configured. */
  async encryptionPassphrase(): Promise<string> {
    if (!this.#material) throw new Error('no key is configured, so the archive is not encrypted');
    return (await this.#material).encryption;
  }

  /**
   * The format-1 tag of a WAL file with this name, size and SHA-256. The name is part of what is
   * authenticated: a genuine segment copied under another segment's name does not pass as that one.
   */
  async plaintextTag(file: string, plaintextBytes: number, plaintextSha256: string): Promise<string> {
    if (!this.#material) return plaintextSha256;
    return createHmac('sha256', (await this.#material).mac).update(`synapse-backup wal file v1\n${file}\n${plaintextBytes}\n${plaintextSha256}\n`).digest('hex');
  }

  /**
   * What makes the format-2 tag of a file: fed the bytes stored for it, in order, its digest is
   * the tag. The MAC covers the encrypted bytes, so a reader checks what it read before it trusts
   * what they decrypt to, and the name, as in format 1.
   */
  async storedTagHash(file: string): Promise<Hash | Hmac> {
    const hash = this.#material ? createHmac('sha256', (await this.#material).mac) : createHash('sha256');
    return hash.update(`synapse-backup wal file v2\n${file}\n`);
  }

  /**
   * The salt a format-2 file is encrypted with (and so its AES key and IV): a MAC of its name and
   * compressed content, not a random one, so that the same file pushed again (PostgreSQL does
   * after a crash, and two pushes may meet) is the same bytes under the same key and is found
   * there, where a random salt would store a second copy under another tag. Other content gets
   * another salt, as a random one would. What it shows, that two stored files are equal, their
   * tags showed already.
   */
  async encryptionSalt(file: string, compressed: readonly Uint8Array[]): Promise<Buffer> {
    if (!this.#material) throw new Error('no key is configured, so the archive is not encrypted');
    const mac = createHmac('sha256', (await this.#material).mac).update(`synapse-backup wal salt v2\n${file}\n`);
    for (const piece of compressed) mac.update(piece);
    return mac.digest().subarray(0, ENCRYPTION_SALT_BYTES);
  }

  /** The MAC of a small document of the archive's own (its identity), or undefined where no key is configured. */
  async documentMac(canonicalText: string): Promise<string | undefined> {
    if (!this.#material) return undefined;
    return createHmac('sha256', (await this.#material).mac).update(`synapse-backup wal document v1\n${canonicalText}`).digest('hex');
  }

  /**
   * Whether a tag read from the storage is the one this file has, by what reading it showed: its
   * size and SHA-256 (format 1) or the digest of its stored bytes by storedTagHash (format 2).
   */
  async tagMatches(tag: WalTag, file: string, read: {readonly bytes: number; readonly sha256: string; readonly storedTag?: string}): Promise<boolean> {
    const expectedHex = tag.format === 2 ? read.storedTag : await this.plaintextTag(file, read.bytes, read.sha256);
    if (expectedHex === undefined) return false;
    const expected = Buffer.from(expectedHex, 'hex');
    const actual = Buffer.from(tag.hex, 'hex');
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }
}
