import {SynapseError} from '../../errors/index.js';
import type {BackupMetadata} from '../../metadata/index.js';
import {COMPRESSION_FORMATS} from '../../pipeline/index.js';
import {type ExistingDatabase, nameForMessage} from '../../postgres/index.js';
import {type TrustDecision, decideTrust, documentAuthenticatorFor} from '../../trust/index.js';
import {decryptionFor, keyFits} from '../stored-backup.js';
import type {RestoreContext, RestoreRequest} from './restore-types.js';

// Step 1: read the backup's metadata and decide whether it may be restored at all

/**
 * Everything in the storage is untrusted: the one trust decision (see core/trust) must not refuse
 * the metadata, and a backup of another database is refused unless asked for. Resolves to the
 * decision, which later says whether anything privileged may come from the metadata.
 */
export async function assertRestoreAllowed(context: RestoreContext, request: RestoreRequest, metadata: BackupMetadata): Promise<TrustDecision> {
  const {settings, events} = context;
  const name = metadata.backupName;
  const decryption = metadata.encryption && settings.encryption ? decryptionFor(context.settings, context.encryptionProviders, metadata, 'restore') : undefined;
  const trust = await decideTrust(metadata, {
    authenticator: documentAuthenticatorFor(settings.encryption),
    allowUnencrypted: request.allowUnencrypted,
    allowUnsigned: request.allowUnsigned,
    ...(decryption ? {keyFits: () => keyFits(context.storage, metadata, decryption)} : {}),
  });
  if (trust.verdict === 'refused') throw new SynapseError(trust.code, {message: `unable to restore '${name}': ${trust.reason}`});
  if (trust.verdict === 'unauthenticated' && trust.why !== 'no-key') events.warning(`restoring '${name}' on the strength of its checksum${metadata.encryption ? ' and key' : ''} alone: ${trust.reason}`);
  const target = settings.database.database;
  if (metadata.database.name !== target && !request.allowOtherDatabase) {
    throw new SynapseError('E_OTHER_DATABASE', {
      message: `unable to restore '${name}' into database '${target}': it is a backup of database '${metadata.database.name}'`,
      details: {sourceDatabase: metadata.database.name, targetDatabase: target},
    });
  }
  const missingCodec = COMPRESSION_FORMATS[metadata.compression.algorithm].unavailable();
  if (missingCodec) {
    throw new SynapseError('E_CONFIG', {
      message: `unable to restore '${name}': it is ${metadata.compression.algorithm}-compressed and ${missingCodec}`,
      suggestion: 'Run synapse-backup through its launcher bin/synapse-backup, which uses the Node.js that `npm install` brings.',
    });
  }
  return trust;
}


/**
 * A dump loaded into a database of another encoding is converted or refused row by row; a
 * SQL_ASCII database restored into UTF8 fails on its first byte above 127. Refused before anything
 * is touched, with what to do.
 */
export function assertEncodingFits(metadata: BackupMetadata, existing: ExistingDatabase | undefined): void {
  const recorded = metadata.database.properties?.encoding;
  if (!existing || !recorded || recorded === existing.encoding) return;
  throw new SynapseError('E_ENCODING_MISMATCH', {
    message: `unable to restore '${metadata.backupName}' into database ${nameForMessage(metadata.database.name)}: the backup's database has encoding ${recorded}, the target has ${existing.encoding}; the target was left as it was`,
    details: {backupEncoding: recorded, targetEncoding: existing.encoding},
  });
}
