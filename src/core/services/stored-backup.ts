import type {EncryptionProvider} from '../../contracts/encryption.js';
import type {StorageBackend} from '../../contracts/storage.js';
import type {Settings} from '../config/index.js';
import {SynapseError, errnoCode, noPluginProvides} from '../errors/index.js';
import type {ProgressEvents} from '../events/index.js';
import {MAX_METADATA_BYTES, parseMetadata, type BackupMetadata} from '../metadata/index.js';
import {isBackupName, metadataKeyFor} from '../naming/index.js';
import {compressedMagic} from '../pipeline/index.js';
import {readRange, readSmallObject, storageError} from '../storage/index.js';

/** What every service that reads stored backups (restore, verify, test-restore) works with. */
export interface StoredBackupContext {
  readonly settings: Settings;
  readonly storage: StorageBackend;
  readonly encryptionProviders: ReadonlyMap<string, EncryptionProvider>;
  readonly events: ProgressEvents;
  readonly signal: AbortSignal;
  readonly now?: () => Date;
}

/** What reading a stored backup needs to decrypt it: the plugin of its cipher and the passphrase. */
export interface Decryption {
  readonly provider: EncryptionProvider;
  readonly key: string;
}

/** Only a bare backup name is accepted: no paths, no `..`, nothing this tool did not name. */
export function assertBackupName(name: string, action: string): void {
  if (!isBackupName(name)) {
    throw new SynapseError('E_USAGE', {
      message: `unable to ${action} '${name}': not a backup name`,
      suggestion: 'Pass a backup name exactly as `synapse-backup backup list` shows it, without a directory.',
    });
  }
}

/**
 * The metadata of the backup `name`, parsed field by field; a missing backup, missing or oversized
 * metadata each get their own message. `action` words them ("restore", "verify").
 */
export async function readBackupMetadata(storage: StorageBackend, name: string, action: string): Promise<BackupMetadata> {
  assertBackupName(name, action);
  let exists;
  try {
    exists = await storage.stat(name);
  } catch (error) {
    throw storageError(error, storage, 'find backup', name);
  }
  if (!exists) throw new SynapseError('E_BACKUP_NOT_FOUND', {message: `unable to ${action} '${name}': no such backup in '${storage.location}'`});
  let text: string;
  try {
    text = await readSmallObject(storage, metadataKeyFor(name), MAX_METADATA_BYTES);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      throw new SynapseError('E_METADATA', {message: `unable to ${action} '${name}': its metadata '${metadataKeyFor(name)}' is missing, so its integrity cannot be checked`});
    }
    if (errnoCode(error) === 'EFBIG') {
      throw new SynapseError('E_METADATA', {message: `unable to ${action} '${name}': its metadata '${metadataKeyFor(name)}' is larger than ${MAX_METADATA_BYTES} bytes, which synapse-backup never writes`});
    }
    throw storageError(error, storage, 'read metadata', metadataKeyFor(name));
  }
  return parseMetadata(name, text);
}

/** The decryption an encrypted backup needs; undefined for an unencrypted one. Throws when no key or no plugin can decrypt it. */
export function decryptionFor(settings: Settings, providers: ReadonlyMap<string, EncryptionProvider>, metadata: BackupMetadata, action: string): Decryption | undefined {
  if (!metadata.encryption) return undefined;
  if (!settings.encryption) {
    throw new SynapseError('E_KEY_REQUIRED', {message: `unable to ${action} '${metadata.backupName}': it is encrypted and no key is configured`});
  }
  const provider = providers.get(metadata.encryption.provider);
  if (!provider) {
    throw noPluginProvides(`decrypt '${metadata.backupName}'`, `cipher '${metadata.encryption.provider}'`);
  }
  return {provider, key: settings.encryption.key.reveal()};
}

/**
 * Decrypts the first bytes and looks for the compressor's magic number. Once the file's checksum
 * is known to be right, garbage here means the key is wrong, not that the file is damaged.
 */
export async function keyFits(storage: StorageBackend, metadata: BackupMetadata, decryption: Decryption): Promise<boolean> {
  const decipher = decryption.provider.createDecryptStream(decryption.key, metadata.encryption!);
  const headLength = Math.min(metadata.sizes.storedBytes, 4096);
  const head: Buffer[] = [];
  decipher.on('data', (chunk: Buffer) => head.push(chunk));
  const source = await readRange(storage, metadata.backupName, {offset: 0, length: headLength});
  const input = Buffer.concat(await source.toArray());
  const decrypted = new Promise<void>((resolve, reject) => {
    decipher.once('error', reject);
    decipher.once('end', resolve);
    // A whole small file can be finished; for a larger one the blocks before the last suffice.
    if (headLength === metadata.sizes.storedBytes) decipher.end(input);
    else decipher.write(input, () => resolve());
  });
  let decryptError: unknown;
  await decrypted.catch((error: unknown) => {
    decryptError = error;
  });
  decipher.destroy();
  const magic = compressedMagic(metadata.compression.algorithm);
  const plain = Buffer.concat(head);
  return decryptError === undefined && plain.length >= magic.length && plain.subarray(0, magic.length).equals(magic);
}
