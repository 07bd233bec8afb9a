import type {BackupMetadata, DocumentAuthenticator} from '../metadata/index.js';

/**
 * What a backup's metadata can be believed for. Every reader of stored backups (restore, verify,
 * test-restore, list, status, cleanup) asks this one decision, so a downgrade (a stripped MAC, an
 * unencrypted file beside encrypted ones) is judged the same way everywhere.
 */
export type TrustDecision =
  /** A key is configured and the MAC is right: written by someone holding the key. May grant privileges. */
  | {readonly verdict: 'authentic'; readonly authenticity: 'authentic'}
  /**
   * Usable, but nothing vouches for it: no key is configured (`no-key`), or the operator accepted
   * an unencrypted backup (`unencrypted`) or a legacy one without a MAC (`unsigned`). Never grants a privilege.
   */
  | {readonly verdict: 'unauthenticated'; readonly why: 'no-key' | 'unencrypted' | 'unsigned'; readonly reason: string}
  /** Not to be used: forged, made with another key, unencrypted where a key is configured, or without a MAC. */
  | {readonly verdict: 'refused'; readonly code: 'E_NOT_AUTHENTIC' | 'E_WRONG_KEY' | 'E_UNENCRYPTED'; readonly why: 'forged' | 'wrong-key' | 'unencrypted' | 'unsigned'; readonly reason: string};

export interface TrustRequest {
  /** Present when a key is configured. */
  readonly authenticator: DocumentAuthenticator | undefined;
  /** The operator accepts an unencrypted backup although a key is configured. */
  readonly allowUnencrypted?: boolean;
  /** The operator accepts metadata without a MAC (written before synapse-backup signed metadata). */
  readonly allowUnsigned?: boolean;
  /**
   * For a MAC that does not match: whether the configured key decrypts the backup's first block,
   * which tells a backup made with another key from a forged document. Omitted: reported as forged.
   */
  readonly keyFits?: () => Promise<boolean>;
}

export const UNSIGNED_FLAG = '--allow-unsigned-metadata';

/**
 * The one trust decision. With a key configured, metadata without a MAC is refused like a wrong
 * MAC: stripping the MAC must never be a way around it. Only the operator's explicit flag lets
 * such a backup (or an unencrypted one) be used, and then only as unauthenticated.
 */
export async function decideTrust(metadata: BackupMetadata, request: TrustRequest): Promise<TrustDecision> {
  const {authenticator} = request;
  if (!authenticator) return {verdict: 'unauthenticated', why: 'no-key', reason: 'no key is configured, so its metadata cannot be authenticated'};
  const authenticity = await authenticator.verify(metadata);
  if (authenticity.status === 'forged') {
    if (metadata.encryption && request.keyFits && !(await request.keyFits())) {
      return {verdict: 'refused', code: 'E_WRONG_KEY', why: 'wrong-key', reason: "the configured key is not the one it was made with (neither its metadata's MAC nor its first block match the key)"};
    }
    return {verdict: 'refused', code: 'E_NOT_AUTHENTIC', why: 'forged', reason: `its metadata is not authentic: ${authenticity.reason}`};
  }
  if (metadata.encryption === null) {
    if (!request.allowUnencrypted) {
      return {
        verdict: 'refused',
        code: 'E_UNENCRYPTED',
        why: 'unencrypted',
        reason: 'it is not encrypted, but a key is configured, so it was not written by a run with this configuration (not authenticated: written without a key)',
      };
    }
    if (authenticity.status === 'authentic') return {verdict: 'authentic', authenticity: 'authentic'};
    return {verdict: 'unauthenticated', why: 'unencrypted', reason: 'not authenticated: written without a key'};
  }
  if (authenticity.status === 'unsigned') {
    if (!request.allowUnsigned) {
      return {
        verdict: 'refused',
        code: 'E_NOT_AUTHENTIC',
        why: 'unsigned',
        reason: `its metadata has no MAC although a key is configured: it was written before synapse-backup signed metadata, or someone removed the MAC (pass ${UNSIGNED_FLAG} only for a backup you know to be that old)`,
      };
    }
    return {verdict: 'unauthenticated', why: 'unsigned', reason: 'its metadata has no MAC (accepted as a legacy backup): nothing privileged is taken from it'};
  }
  return {verdict: 'authentic', authenticity: 'authentic'};
}
