import type {EncryptionSettings} from '../config/index.js';
import {DocumentAuthenticator} from '../metadata/index.js';

/**
 * With a key configured, documents in the storage are signed and checked with a MAC keyed from it;
 * without one nothing can be authenticated, and the catalogue says so by having no authenticator.
 */
export function documentAuthenticatorFor(encryption: EncryptionSettings | undefined): DocumentAuthenticator | undefined {
  return encryption ? new DocumentAuthenticator(encryption.key, encryption.iterations) : undefined;
}
