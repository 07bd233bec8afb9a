import {hostname} from 'node:os';
import {pipeline} from 'node:stream/promises';

import {SynapseError, errnoCode} from '../errors/index.js';
import {MAX_METADATA_BYTES, type BackupMetadata} from '../metadata/index.js';
import {metadataKeyFor, pendingKeyFor, verificationKeyFor} from '../naming/index.js';
import {ByteCounter, Sha256Observer, SizeLimit} from '../pipeline/index.js';
import {readSmallObject, storageError, writeSmallObject} from '../storage/index.js';
import type {Location} from './location.js';

/** What a copy of one backup to one location came to. */
export type CopyOutcome =
  /** Copied: the data, its SHA-256 checked as it arrived, then the metadata, byte for byte. */
  | {readonly outcome: 'copied'; readonly bytes: number}
  /** The location holds it already: the same metadata, data of the recorded size. */
  | {readonly outcome: 'present'}
  /** With `repair`: a copy that failed its checksum, replaced. */
  | {readonly outcome: 'repaired'; readonly bytes: number}
  /** The location holds something else under that name (a damaged or planted copy): left for the operator. */
  | {readonly outcome: 'conflict'; readonly reason: string};

export interface CopyOptions {
  readonly signal?: AbortSignal;
  /** Replace a copy whose data fails its checksum (the same metadata), instead of reporting it. */
  readonly repair?: boolean;
  /** Look, and say what would be done; change nothing. */
  readonly dryRun?: boolean;
}

/** A good copy to copy from: its location, its authenticated metadata, and that document's bytes as stored. */
export interface CopySource {
  readonly location: Location;
  readonly metadata: BackupMetadata;
  readonly metadataText: string;
}

async function sha256Of(location: Location, key: string, limit: number, signal: AbortSignal | undefined): Promise<{sha256: string; bytes: number}> {
  const hash = new Sha256Observer();
  const counter = new ByteCounter();
  await pipeline(await location.storage.get(key, signal ? {signal} : {}), new SizeLimit(limit, 'it holds more than %d bytes'), hash, counter, async function (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) void chunk;
  });
  return {sha256: hash.digest, bytes: counter.bytes};
}

async function readIfPresent(location: Location, key: string): Promise<string | undefined> {
  try {
    return await readSmallObject(location.storage, key, MAX_METADATA_BYTES);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw storageError(error, location.storage, 'read', key);
  }
}

/**
 * The data of a backup from `source` to `target`: read once, its size bounded by the record and
 * its SHA-256 checked as it streams, published only under a name that is free. A copy whose
 * bytes do not match the record is removed and fails, naming the source as damaged.
 */
async function copyData(source: CopySource, target: Location, signal: AbortSignal | undefined): Promise<number> {
  const {metadata} = source;
  const name = metadata.backupName;
  const hash = new Sha256Observer();
  const counter = new ByteCounter();
  const limit = new SizeLimit(metadata.sizes.storedBytes, 'it holds more than the %d bytes its metadata records');
  let body;
  try {
    body = await source.location.storage.get(name, signal ? {signal} : {});
  } catch (error) {
    throw storageError(error, source.location.storage, 'read', name);
  }
  const observed = body.pipe(limit).pipe(hash).pipe(counter);
  for (const stage of [body, limit, hash]) stage.once('error', (error) => observed.destroy(error));
  try {
    await target.storage.put(name, observed, {ifNotExists: true, private: true, immutable: true, ...(signal ? {signal} : {})});
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') throw new SynapseError('E_STORAGE', {message: `unable to copy '${name}' to location '${target.name}': an object of that name appeared there meanwhile; left as it is`});
    throw storageError(error, target.storage, `copy '${name}' from location '${source.location.name}' to`, name);
  }
  if (counter.bytes !== metadata.sizes.storedBytes || hash.digest !== metadata.checksums.stored) {
    await target.storage.delete(name).catch(() => {});
    throw new SynapseError('E_INTEGRITY', {
      message: `unable to copy '${name}' from location '${source.location.name}': its data there does not match the checksum its metadata records (${counter.bytes} bytes, sha256 ${hash.digest}); the copy was removed from '${target.name}'`,
      suggestion: `The copy at '${source.location.name}' is damaged: run \`synapse-backup backup verify ${name}\`, and sync from a location whose copy is good.`,
    });
  }
  return counter.bytes;
}

/**
 * Makes `target` hold the backup `source` holds: the same encrypted bytes and the same metadata
 * document, so that the target alone is a complete, restorable storage. A run marker comes first
 * and goes last, so a copy killed at any moment leaves nothing that looks good (the next cleanup
 * removes it). What the target holds already under that name is never overwritten unless it is
 * a copy of this very backup whose data fails its checksum, and `repair` is asked for.
 * The caller holds the target's lock.
 */
export async function copyBackup(source: CopySource, target: Location, options: CopyOptions = {}): Promise<CopyOutcome> {
  const {metadata, metadataText} = source;
  const name = metadata.backupName;
  const metadataKey = metadataKeyFor(name);
  const pendingKey = pendingKeyFor(name);
  const {storage} = target;
  const [theirMetadata, theirData, theirPending] = await Promise.all([
    readIfPresent(target, metadataKey),
    storage.stat(name).catch((error: unknown) => {
      throw storageError(error, storage, 'look up', name);
    }),
    storage.stat(pendingKey).catch(() => undefined),
  ]);
  if (theirMetadata !== undefined && theirMetadata !== metadataText) {
    return {outcome: 'conflict', reason: `its metadata differs from the copy at '${source.location.name}' (a different backup under the same name, or one planted there); left as it is`};
  }
  let replace = false;
  if (theirData) {
    const theirs = await sha256Of(target, name, metadata.sizes.storedBytes + 1, options.signal).catch(() => undefined);
    const matches = theirs?.sha256 === metadata.checksums.stored && theirs.bytes === metadata.sizes.storedBytes;
    if (matches && theirMetadata !== undefined) return {outcome: 'present'};
    if (!matches) {
      // A copy of ours that a killed run left (its marker is there), or a damaged one with --repair: replaced. Anything else is not ours to touch.
      const ours = theirPending !== undefined && theirMetadata === undefined;
      if (!ours && !(options.repair && theirMetadata !== undefined)) {
        return {
          outcome: 'conflict',
          reason:
            theirMetadata === undefined
              ? `it holds a file of that name that is not this backup, without metadata; left as it is`
              : `its copy fails its checksum (damaged); left as it is: pass --repair to replace it from '${source.location.name}'`,
        };
      }
      replace = true;
    }
  }
  if (options.dryRun) return replace ? {outcome: 'repaired', bytes: metadata.sizes.storedBytes} : {outcome: 'copied', bytes: metadata.sizes.storedBytes};
  const marker = `${JSON.stringify({backupName: name, pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString(), copiedFrom: source.location.name})}\n`;
  try {
    await writeSmallObject(storage, pendingKey, marker, {private: true});
  } catch (error) {
    throw storageError(error, storage, `mark the copy of '${name}' at`, pendingKey);
  }
  try {
    const bytes = await publishCopy(source, target, {replace, theirData: theirData !== undefined, theirMetadata, signal: options.signal});
    await storage.delete(pendingKey).catch(() => {});
    return replace ? {outcome: 'repaired', bytes} : {outcome: 'copied', bytes};
  } catch (error) {
    // What failed removed what it wrote; the marker goes too unless the data may still be there.
    if (!(await storage.stat(name).catch(() => 'unknown'))) await storage.delete(pendingKey).catch(() => {});
    throw error;
  }
}

/** The data (unless the target holds it whole), then the metadata, byte for byte. */
async function publishCopy(source: CopySource, target: Location, state: {replace: boolean; theirData: boolean; theirMetadata: string | undefined; signal: AbortSignal | undefined}): Promise<number> {
  const {metadata, metadataText} = source;
  const name = metadata.backupName;
  const metadataKey = metadataKeyFor(name);
  const {storage} = target;
  const {replace, theirMetadata} = state;
  let bytes = metadata.sizes.storedBytes;
  if (replace || !state.theirData) {
    if (replace) {
      // The damaged copy's metadata goes first: from here to the end, this backup does not look good
      // there. Its failed verification went with the damaged bytes; the new ones are checked as they arrive.
      for (const key of [metadataKey, name, verificationKeyFor(name)]) {
        await storage.delete(key).catch((error: unknown) => {
          throw storageError(error, storage, 'remove the damaged copy of', key);
        });
      }
    }
    bytes = await copyData(source, target, state.signal);
  }
  if (theirMetadata === undefined || replace) {
    try {
      // Byte for byte: the same document, the same MAC.
      await writeSmallObject(storage, metadataKey, metadataText, {ifNotExists: true, private: true, immutable: true});
    } catch (error) {
      throw storageError(error, storage, `write the metadata of '${name}' at`, metadataKey);
    }
  }
  return bytes;
}
