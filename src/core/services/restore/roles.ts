import type {BackupMetadata} from '../../metadata/index.js';
import {transformWhole} from '../../pipeline/index.js';
import {DatabaseAdmin} from '../../postgres/index.js';
import type {Decryption} from '../stored-backup.js';
import {type RestoreContext, SUPERUSER_EQUIVALENT_FLAG} from './restore-types.js';

// Roles for a new server

/** Decrypts a small document sealed with the backup's cipher and key (see run-backup's encryptSmall). */
export function decryptSmall(decryption: Decryption, metadata: BackupMetadata, sealed: Buffer): Promise<Buffer> {
  return transformWhole(decryption.provider.createDecryptStream(decryption.key, metadata.encryption!), sealed);
}

/**
 * Creates the roles the backup records and this server lacks, never touching existing ones.
 * What a created role may do beyond logging in comes only from metadata a key vouches for: without
 * one, anyone who can write to the storage could have written the list (see createMissingRoles).
 */
export async function createRecordedRoles(
  context: RestoreContext,
  admin: DatabaseAdmin,
  metadata: BackupMetadata,
  decryption: Decryption | undefined,
  trust: {authentic: boolean; superuserEquivalent: boolean},
): Promise<string[]> {
  const {events} = context;
  const globals = metadata.globals;
  if (!globals) {
    events.warning(`backup '${metadata.backupName}' records no roles (it was taken before synapse-backup recorded them): --create-roles creates none`);
    return [];
  }
  let hashes: Record<string, string> = {};
  if (globals.passwords === 'included' && decryption) {
    try {
      const parsed: unknown = JSON.parse((await decryptSmall(decryption, metadata, Buffer.from(globals.passwordHashes!, 'base64'))).toString('utf8'));
      if (typeof parsed === 'object' && parsed !== null && Object.values(parsed).every((hash) => typeof hash === 'string')) hashes = parsed as Record<string, string>;
    } catch (error) {
      events.warning(`unable to decrypt the password hashes recorded in '${metadata.backupName}' (${(error as Error).message}); the roles are created without passwords`);
    }
  } else if (globals.passwords !== 'included') {
    events.warning(`backup '${metadata.backupName}' holds no password hashes (${globals.passwords === 'omitted-unencrypted' ? 'it is not encrypted' : 'the role that took it could not read them'}): set the passwords of the created roles yourself`);
  }
  const {created, withheld} = await admin.createMissingRoles(globals, hashes, {authentic: trust.authentic, superuserEquivalent: trust.superuserEquivalent});
  if (withheld.length > 0) {
    const why = trust.authentic
      ? `existing roles are never changed; SUPERUSER, REPLICATION and BYPASSRLS need a superuser to grant them; memberships that give the server's operating-system account need ${SUPERUSER_EQUIVALENT_FLAG}`
      : 'existing roles are never changed; privileged attributes, CREATEROLE, memberships in roles that existed before and role settings need metadata authenticated by a key';
    events.warning(`not granted: ${withheld.join(', ')} (${why}); grant them yourself if they are needed`);
  }
  return created;
}
