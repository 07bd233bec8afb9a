import {createWriteStream} from 'node:fs';
import {open, rename, rm} from 'node:fs/promises';
import {once} from 'node:events';

import {SynapseError} from '../errors/index.js';
import {storageError} from '../storage/index.js';
import {archivedCopiesOf, judgeArchivedCopy, type CopyJudgement} from './archived-copies.js';
import type {WalArchiveContext} from './push-wal-file.js';
import {walFileOf} from './push-wal-file.js';

export interface FetchRequest {
  /** The WAL file PostgreSQL asks for (%f). */
  readonly file: string;
  /** Where PostgreSQL wants it (%p). */
  readonly destination: string;
}

export interface FetchResult {
  readonly file: string;
  readonly location: string;
  readonly key: string;
  readonly bytes: number;
  /** The locations tried before, and why they could not give it. */
  readonly skipped: ReadonlyArray<{readonly location: string; readonly reason: string}>;
}

type Refusal = {readonly location: string; readonly key?: string} & Exclude<CopyJudgement, {verdict: 'good'}>;

/** The suffix of the file a fetch writes before it is complete and checked; renamed to %p only then. */
export const FETCH_STAGING_SUFFIX = '.synapse-backup-fetch';

/**
 * Restores one archived WAL file to where PostgreSQL asks for it, from the first location that
 * holds a good copy: decoded into a staging file beside it, checked against its tag (the MAC: a
 * planted or changed file is never handed to recovery), and only then renamed into place.
 * A file no location has is E_WAL_NOT_FOUND, which PostgreSQL meets all the time (it asks for the
 * next timeline's history and the segment after the last); copies that exist but cannot be used
 * fail loudly, named.
 */
export async function fetchWalFile(context: WalArchiveContext, request: FetchRequest): Promise<FetchResult> {
  const file = walFileOf(request.file, 'fetch');
  const refusals: Refusal[] = [];
  const staging = `${request.destination}${FETCH_STAGING_SUFFIX}`;
  for (const location of context.locations) {
    let copies;
    try {
      copies = await archivedCopiesOf(location.storage, file.name);
    } catch (error) {
      refusals.push({location: location.name, verdict: 'unreadable', reason: storageError(error, location.storage, 'list the archived copies of', file.name).message});
      continue;
    }
    // Those that can be authentic first: with a key configured, an unencrypted copy never is.
    copies.sort((a, b) => Number(b.encrypted === context.codec.keys.authenticated) - Number(a.encrypted === context.codec.keys.authenticated));
    for (const copy of copies) {
      // 'w' truncates what a killed fetch left under this name; nothing but a checked file is renamed to %p.
      const handle = await open(staging, 'w', 0o600);
      const sink = createWriteStream('', {fd: handle, flush: true});
      let judged: CopyJudgement;
      try {
        judged = await judgeArchivedCopy(location.storage, copy, context.codec, sink, context.signal);
      } catch (error) {
        await rm(staging, {force: true});
        throw new SynapseError('E_USAGE', {message: `unable to write '${request.destination}': ${(error as Error).message}`, cause: error});
      } finally {
        // A copy refused before it was read never wrote to the file: close it all the same.
        if (!sink.closed) {
          sink.destroy();
          await once(sink, 'close').catch(() => {});
        }
      }
      if (judged.verdict === 'good') {
        await rename(staging, request.destination);
        return {file: file.name, location: location.name, key: copy.key, bytes: judged.digest.bytes, skipped: refusals.map((refusal) => ({location: refusal.location, reason: `${refusal.key ?? ''}: ${refusal.reason}`}))};
      }
      await rm(staging, {force: true});
      refusals.push({location: location.name, key: copy.key, ...judged});
    }
  }
  // A location that could not be listed may hold it: only where every location was read is it missing.
  if (refusals.length === 0) {
    throw new SynapseError('E_WAL_NOT_FOUND', {message: `unable to fetch '${file.name}': no location holds it`, details: {file: file.name}});
  }
  const worst = refusals.find((refusal) => refusal.verdict === 'not-authentic') ?? refusals.find((refusal) => refusal.verdict === 'damaged') ?? refusals[0]!;
  const code = worst.verdict === 'not-authentic' ? 'E_NOT_AUTHENTIC' : worst.verdict === 'damaged' ? 'E_INTEGRITY' : 'E_STORAGE';
  const described = refusals.map((refusal) => `${context.locations.length > 1 ? `location '${refusal.location}': ` : ''}${refusal.key ? `'${refusal.key}' ` : ''}${refusal.reason}`);
  throw new SynapseError(code, {
    message: `unable to fetch '${file.name}': ${described.join('; ')}`,
    suggestion:
      code === 'E_STORAGE'
        ? 'Recovery cannot go on past this file until a location can be read: fix the storage, then start the server again; it asks for the file again.'
        : 'Do not replay past this point from these copies. Fetch the file from another location if one holds it good (BACKUP_LOCATIONS), check who can write to the storage, and run `synapse-backup backup verify` on the archive.',
    details: {file: file.name, copies: refusals.map(({location, key, verdict, reason}) => ({location, key, verdict, reason}))},
  });
}
