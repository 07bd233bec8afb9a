import type {EncryptionProvider} from 'synapse-backup/plugin-api';

import {opensslAesCbc} from '../openssl-aes-cbc.js';

export default async function registerEncryptionProviders(): Promise<EncryptionProvider[]> {
  return [opensslAesCbc];
}
