import {timingSafeEqual} from 'node:crypto';
import {open} from 'node:fs/promises';
import path from 'node:path';

import type {StorageBackend} from '../../contracts/storage.js';
import {SynapseError, errnoCode} from '../errors/index.js';
import {canonicalJson} from '../metadata/index.js';
import {readSmallObject, storageError, writeSmallObject} from '../storage/index.js';
import {WAL_AREA} from './wal-file-names.js';
import type {WalKeys} from './wal-keys.js';

/** The document that says whose WAL an archive holds: one cluster's, by its system identifier. */
export const ARCHIVE_IDENTITY_KEY = `${WAL_AREA}archive.json`;

interface ArchiveIdentity {
  readonly formatVersion: 1;
  readonly systemIdentifier: string;
  readonly createdAt: string;
}

/**
 * The system identifier of the cluster whose data directory this is: the first field of
 * global/pg_control, a 64-bit number in the machine's byte order, fixed at initdb and kept by every
 * copy of the cluster (base backups, standbys, restores), changed by nothing but a new initdb.
 */
export async function readSystemIdentifier(dataDirectory: string): Promise<string> {
  const file = path.join(dataDirectory, 'global', 'pg_control');
  let handle;
  try {
    handle = await open(file, 'r');
    const buffer = Buffer.alloc(8);
    const {bytesRead} = await handle.read(buffer, 0, 8, 0);
    if (bytesRead !== 8) throw new Error('it is shorter than 8 bytes');
    return buffer.readBigUInt64LE(0).toString();
  } catch (error) {
    throw new SynapseError('E_USAGE', {
      message: `unable to read the cluster's system identifier from '${file}': ${errnoCode(error) ?? (error as Error).message}`,
      suggestion: "Run `wal push` as PostgreSQL's archive_command (it runs in the data directory), or pass --pg-data with the cluster's data directory.",
      cause: error,
    });
  } finally {
    await handle?.close();
  }
}

/**
 * The data directory of the WAL file PostgreSQL passes as %p: archive_command runs in the data
 * directory with %p relative to it (pg_wal/...); else PGDATA, else the working directory.
 */
export function dataDirectoryOf(walPath: string, explicit: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  if (explicit) return path.resolve(explicit);
  const absolute = path.resolve(walPath);
  if (path.basename(path.dirname(absolute)) === 'pg_wal') return path.dirname(path.dirname(absolute));
  return path.resolve(env.PGDATA?.trim() || '.');
}

/** Whether a document's MAC is the archive key's: one PBKDF2 per run serves the files and this. */
async function identityAuthentic(keys: WalKeys, document: ArchiveIdentity & {mac?: unknown}): Promise<boolean> {
  const {mac, ...identity} = document;
  if (typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac)) return false;
  const expected = Buffer.from((await keys.documentMac(canonicalJson(identity)))!, 'hex');
  return timingSafeEqual(expected, Buffer.from(mac, 'hex'));
}

function parseIdentity(text: string): (ArchiveIdentity & {mac?: unknown}) | undefined {
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    if (parsed.formatVersion !== 1 || typeof parsed.systemIdentifier !== 'string' || !/^\d{1,20}$/.test(parsed.systemIdentifier) || typeof parsed.createdAt !== 'string') return undefined;
    return parsed as unknown as ArchiveIdentity;
  } catch {
    return undefined;
  }
}

/**
 * Makes sure the archive at this storage is this cluster's, claiming it on the first push. A
 * second cluster pushing to the same place, whose segment names would one day collide with the
 * first's, is refused on its first push instead. With a key configured the document is signed, and
 * one that is not authentic is refused rather than overwritten: it may be someone's way to make us
 * archive into an archive they chose.
 */
export async function claimArchive(storage: StorageBackend, systemIdentifier: string, keys: WalKeys, now: Date, options: {readOnly?: boolean} = {}): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    let text: string | undefined;
    try {
      text = await readSmallObject(storage, ARCHIVE_IDENTITY_KEY, 64 * 1024);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw storageError(error, storage, 'read the WAL archive identity', ARCHIVE_IDENTITY_KEY);
    }
    // A reader only checks a claim: the first push, as the server's user, makes it (and the area, with that user's modes).
    if (text === undefined && options.readOnly) return;
    if (text === undefined) {
      const identity: ArchiveIdentity = {formatVersion: 1, systemIdentifier, createdAt: now.toISOString()};
      const mac = await keys.documentMac(canonicalJson(identity));
      const document = mac ? {...identity, mac} : identity;
      try {
        await writeSmallObject(storage, ARCHIVE_IDENTITY_KEY, `${JSON.stringify(document, null, 2)}\n`, {ifNotExists: true, private: true});
        return;
      } catch (error) {
        // Another push claimed it first: read what it wrote.
        if (errnoCode(error) === 'EEXIST') continue;
        throw storageError(error, storage, 'write the WAL archive identity', ARCHIVE_IDENTITY_KEY);
      }
    }
    const identity = parseIdentity(text);
    const where = `'${ARCHIVE_IDENTITY_KEY}' at ${storage.location}`;
    if (!identity) {
      throw new SynapseError('E_METADATA', {
        message: `unable to archive WAL at ${storage.location}: its archive identity ${where} is not a document synapse-backup writes`,
        suggestion: `Nothing was archived there. If you did not write it, someone who can write to the storage did: check who can, then move ${ARCHIVE_IDENTITY_KEY} away.`,
      });
    }
    if (keys.authenticated && !(await identityAuthentic(keys, identity))) {
      throw new SynapseError('E_NOT_AUTHENTIC', {
        message: `unable to archive WAL at ${storage.location}: its archive identity ${where} is not authentic (${identity.mac === undefined ? 'it has no MAC' : 'its MAC does not match'})`,
        suggestion: `Nothing was archived there. Someone who can write to the storage may have planted it, or it was written with another key: check the key (BACKUP_ENCRYPTION_KEY_FILE) and who can write there before you move ${ARCHIVE_IDENTITY_KEY} away.`,
      });
    }
    if (identity.systemIdentifier !== systemIdentifier) {
      throw new SynapseError('E_WAL_CONFLICT', {
        message: `unable to archive WAL at ${storage.location}: it holds the WAL archive of the cluster with system identifier ${identity.systemIdentifier} (since ${identity.createdAt}), and this cluster's is ${systemIdentifier}`,
        details: {archiveSystemIdentifier: identity.systemIdentifier, systemIdentifier},
      });
    }
    return;
  }
  throw new SynapseError('E_STORAGE', {message: `unable to claim the WAL archive at ${storage.location}: ${ARCHIVE_IDENTITY_KEY} was written and then could not be read`});
}
