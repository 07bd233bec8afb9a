import type {Transform} from 'node:stream';

/**
 * Everything needed to decrypt a backup except the key, recorded in the backup's metadata.
 * Must never contain the key or anything derived from it.
 */
export interface CipherParameters {
  /** The provider that wrote the file, e.g. 'aes-256-cbc'. */
  readonly provider: string;
  readonly cipher: string;
  readonly kdf: string;
  readonly kdfDigest: string;
  readonly kdfIterations: number;
  /** Byte layout of the stored file, e.g. 'openssl-salted' for `Salted__` + salt + ciphertext. */
  readonly container: string;
}

export interface EncryptOptions {
  readonly iterations?: number;
  /**
   * The salt to use instead of a random one, for a ciphertext that the same key, salt and content
   * always make (the WAL archive derives it from the content under a secret key, so that a file
   * pushed again is stored as the same bytes). A provider uses exactly this salt or throws; never
   * another.
   */
  readonly salt?: Uint8Array;
}

/**
 * A cipher the core can put into the backup pipeline. The key is passed in process memory only;
 * a provider must never write it to argv, logs, files or error messages.
 */
export interface EncryptionProvider {
  readonly id: string;
  readonly description: string;
  /** Appended to the backup file name, e.g. '.enc'. */
  readonly fileSuffix: string;
  readonly defaultIterations: number;
  /** Parameters the stream returned by createEncryptStream will use. */
  describe(options: EncryptOptions): CipherParameters;
  createEncryptStream(key: string, options: EncryptOptions): Transform;
  createDecryptStream(key: string, parameters: CipherParameters): Transform;
}
