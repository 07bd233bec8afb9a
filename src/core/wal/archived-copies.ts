import type {Writable} from 'node:stream';

import type {StorageBackend} from '../../contracts/storage.js';
import {errnoCode} from '../errors/index.js';
import {listObjects, storageError} from '../storage/index.js';
import {ARCHIVE_IDENTITY_KEY} from './archive-identity.js';
import {decodeArchivedFile, WalCodecFailure, type DecodedDigest, type FileDigest, type WalCodec} from './archived-file.js';
import {WAL_AREA, parseWalObjectKey, walLookupPrefix, type WalObjectName} from './wal-file-names.js';

/** The archived copies of one WAL file at one storage, whatever their content; never another file's. */
export async function archivedCopiesOf(storage: StorageBackend, file: string): Promise<WalObjectName[]> {
  const copies: WalObjectName[] = [];
  for await (const object of listObjects(storage, {prefix: walLookupPrefix(file)})) {
    const parsed = parseWalObjectKey(object.key);
    // `000000010000000000000005.partial` is not `000000010000000000000005`: only the exact name counts.
    if (parsed && parsed.file.name === file) copies.push(parsed);
  }
  return copies;
}

/** Everything the WAL area of one storage holds: its archived copies (with when the storage took each) and whether it has the archive's identity. */
export interface WalAreaListing {
  readonly copies: ReadonlyArray<WalObjectName & {readonly modifiedAt: Date}>;
  readonly identity: boolean;
}

/** Lists the whole WAL area; an area that does not exist yet is an empty one. */
export async function listWalArea(storage: StorageBackend): Promise<WalAreaListing> {
  const copies: Array<WalObjectName & {modifiedAt: Date}> = [];
  let identity = false;
  try {
    for await (const object of listObjects(storage, {prefix: WAL_AREA})) {
      if (object.key === ARCHIVE_IDENTITY_KEY) identity = true;
      const parsed = parseWalObjectKey(object.key);
      if (parsed) copies.push({...parsed, modifiedAt: object.modifiedAt});
    }
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw storageError(error, storage, 'list the WAL archive in');
  }
  return {copies, identity};
}

/** What reading an archived copy showed it to be. */
export type CopyJudgement =
  | {readonly verdict: 'good'; readonly digest: FileDigest}
  /** Its content is not what its tag says: changed, planted, or written with another key. */
  | {readonly verdict: 'not-authentic'; readonly reason: string}
  /** It cannot be decoded to the end, or the storage could not read it. */
  | {readonly verdict: 'damaged'; readonly reason: string}
  | {readonly verdict: 'unreadable'; readonly reason: string};

/**
 * Reads a copy to its end and checks its tag against what it decoded to. With a key configured
 * only an encrypted copy can be authentic; without one, an encrypted copy cannot be read at all.
 */
export async function judgeArchivedCopy(storage: StorageBackend, copy: WalObjectName, codec: WalCodec, sink?: Writable, signal?: AbortSignal): Promise<CopyJudgement> {
  if (codec.keys.authenticated && !copy.encrypted) {
    return {verdict: 'not-authentic', reason: 'it is not encrypted, but a key is configured, so no run of this configuration wrote it'};
  }
  if (!codec.keys.authenticated && copy.encrypted) {
    return {verdict: 'unreadable', reason: 'it is encrypted and no key is configured (set BACKUP_ENCRYPTION_KEY_FILE)'};
  }
  let digest: DecodedDigest;
  try {
    digest = await decodeArchivedFile(storage, copy, codec, sink, signal);
  } catch (error) {
    if (!(error instanceof WalCodecFailure)) throw error;
    if (error.step === 'read') return {verdict: 'unreadable', reason: `the storage could not read it: ${error.message}`};
    if (error.step === 'write') throw error.error;
    if (error.step === 'decrypt' && codec.keys.authenticated) {
      return {verdict: 'not-authentic', reason: `it cannot be decrypted with the configured key (${error.message}): planted, damaged, or written with another key`};
    }
    return {verdict: 'damaged', reason: `it cannot be ${error.step === 'decrypt' ? 'decrypted' : 'decompressed'} to its end: ${error.message}`};
  }
  if (await codec.keys.tagMatches(copy.tag, copy.file.name, digest)) return {verdict: 'good', digest: {bytes: digest.bytes, sha256: digest.sha256}};
  return codec.keys.authenticated
    ? {verdict: 'not-authentic', reason: 'its content does not match its MAC: it was changed or planted, or written with another key'}
    : {verdict: 'damaged', reason: 'its content does not match the SHA-256 in its name'};
}
