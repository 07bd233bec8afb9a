import type {EncryptionSettings} from '../config/index.js';
import {DocumentAuthenticator} from '../metadata/index.js';

/** One authenticator per configured key: its PBKDF2 derivation is made once per run, whoever signs or checks. */
const authenticators = new WeakMap<EncryptionSettings, DocumentAuthenticator>();

/**
 * With a key configured, documents in the storage are signed and checked with a MAC keyed from it;
 * without one nothing can be authenticated, and the catalogue says so by having no authenticator.
 */
export function documentAuthenticatorFor(encryption: EncryptionSettings | undefined): DocumentAuthenticator | undefined {
  if (!encryption) return undefined;
  let authenticator = authenticators.get(encryption);
  if (!authenticator) {
    authenticator = new DocumentAuthenticator(encryption.key, encryption.iterations);
    authenticators.set(encryption, authenticator);
  }
  return authenticator;
}
