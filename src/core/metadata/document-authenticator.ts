import {createHmac, pbkdf2, timingSafeEqual} from 'node:crypto';
import {promisify} from 'node:util';

import type {Secret} from '../secrets/index.js';
import {canonicalJson} from './canonical-json.js';
import {parseAuthentication, type DocumentAuthentication} from './backup-metadata.js';

const derive = promisify(pbkdf2);

/**
 * A label of its own as the PBKDF2 salt: the MAC key is never the file's AES key, which
 * `openssl enc` derives from the same passphrase with each file's random salt.
 */
const MAC_KEY_SALT = Buffer.from('synapse-backup/metadata-authentication/v1', 'utf8');

export type Authenticity =
  /** The MAC is right: the document was written by someone holding the key. */
  | {readonly status: 'authentic'}
  /** No MAC: written before metadata was authenticated, or on a storage without a key. */
  | {readonly status: 'unsigned'}
  /** A MAC that does not match, or one we cannot read: never trusted. */
  | {readonly status: 'forged'; readonly reason: string};

/**
 * Signs and checks small documents in the backup storage (metadata, verification records) with
 * HMAC-SHA256 keyed from the passphrase. Anyone who can write to the storage can write a document;
 * only a holder of the key can write one that passes verify().
 */
export class DocumentAuthenticator {
  readonly #passphrase: Secret;
  readonly #iterations: number;
  readonly #keys = new Map<number, Promise<Buffer>>();

  constructor(passphrase: Secret, iterations: number) {
    this.#passphrase = passphrase;
    this.#iterations = iterations;
  }

  #key(iterations: number): Promise<Buffer> {
    let key = this.#keys.get(iterations);
    if (!key) {
      key = derive(Buffer.from(this.#passphrase.reveal(), 'utf8'), MAC_KEY_SALT, iterations, 32, 'sha256');
      this.#keys.set(iterations, key);
    }
    return key;
  }

  /** Starts deriving the key for new documents now, so that a later sign() does not wait for it. */
  prepare(): void {
    this.#key(this.#iterations).catch(() => {});
  }

  static #signedPart(document: object, authentication: Omit<DocumentAuthentication, 'mac'>): string {
    return canonicalJson({...document, authentication});
  }

  async sign<T extends object>(document: T): Promise<T & {authentication: DocumentAuthentication}> {
    const header = {algorithm: 'hmac-sha256', kdf: 'pbkdf2-sha256', kdfIterations: this.#iterations} as const;
    const {authentication: _previous, ...unsigned} = document as T & {authentication?: unknown};
    const mac = createHmac('sha256', await this.#key(this.#iterations)).update(DocumentAuthenticator.#signedPart(unsigned, header)).digest('hex');
    return {...(unsigned as T), authentication: {...header, mac}};
  }

  async verify(document: object): Promise<Authenticity> {
    const {authentication: raw, ...unsigned} = document as {authentication?: unknown};
    if (raw === undefined) return {status: 'unsigned'};
    const authentication = parseAuthentication(raw);
    if (typeof authentication === 'string') return {status: 'forged', reason: authentication};
    const {mac, ...header} = authentication;
    const expected = createHmac('sha256', await this.#key(header.kdfIterations)).update(DocumentAuthenticator.#signedPart(unsigned, header)).digest();
    const actual = Buffer.from(mac, 'hex');
    return actual.length === expected.length && timingSafeEqual(actual, expected)
      ? {status: 'authentic'}
      : {status: 'forged', reason: 'its MAC does not match: it was not written with the configured key, or it was changed since'};
  }
}
