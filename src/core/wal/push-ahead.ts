import path from 'node:path';

import type {WalArchiveSettings} from '../config/index.js';
import {acknowledge, acknowledgementMatches, boundLocations, prepareSpool, pruneAcknowledgements, readyFiles, spoolDirectoryOf} from './acknowledgements.js';
import {pushWalFiles, type PushRequest, type PushResult, type WalPushContext} from './push-wal-file.js';
import {ENCODING_WORKERS_FROM, WalEncodingWorkers, adoptEarlyEncoders, encodingThreads} from './wal-encoding-workers.js';

export interface PushAheadOptions extends WalArchiveSettings {
  /** The process environment and ./.env, whose location settings the acknowledgements are bound to. */
  readonly env: {readonly process: Readonly<Record<string, string | undefined>>; readonly dotenv: Readonly<Record<string, string | undefined>>};
  /** The pg_wal the requested file is in. */
  readonly pgWal: string;
}

/**
 * Archives the file PostgreSQL asked for and, with it, up to `pushAhead` of the files waiting for
 * the archiver after it, `parallel` at a time. Resolves with the requested file's result once it
 * is durable everywhere (or rejects with its failure) and once every file pushed ahead has settled:
 * those that are durable everywhere are acknowledged in the spool, the others simply are not, and
 * the archiver's own call for them archives them (and reports what fails).
 */
export async function pushAhead(context: WalPushContext, requested: PushRequest, options: PushAheadOptions): Promise<{requested: PushResult; ahead: string[]}> {
  const bound = boundLocations(options.env.process, options.env.dotenv);
  const spool = options.pushAhead > 0 && bound !== undefined ? spoolDirectoryOf(requested.path, options.spoolDirectory) : undefined;
  const refusal = spool ? await prepareSpool(spool, bound!) : undefined;
  if (refusal) context.onWarning(refusal);
  const usable = spool && !refusal ? spool : undefined;
  const requestedName = path.basename(requested.path);
  const waiting = usable
    ? (await readyFiles(options.pgWal))
        .filter((name) => name !== requestedName && !acknowledgementMatches(usable, path.join(options.pgWal, name), bound))
        .slice(0, options.pushAhead)
    : [];
  const requests: PushRequest[] = [requested, ...waiting.map((name) => ({path: path.join(options.pgWal, name), systemIdentifier: requested.systemIdentifier}))];
  const ahead: string[] = [];
  // Workers started before the CLI loaded are used whatever the number of files: their start is paid.
  const encoders =
    adoptEarlyEncoders(context.compression, context.onWarning, encodingThreads()) ??
    (requests.length >= ENCODING_WORKERS_FROM ? new WalEncodingWorkers({threads: encodingThreads(), compression: context.compression, onWarning: context.onWarning}) : undefined);
  encoders?.readAhead(requests.map((request) => request.path));
  const acknowledgeAhead = async (request: PushRequest, outcome: PromiseSettledResult<PushResult>): Promise<void> => {
    if (request === requested || outcome.status !== 'fulfilled' || !usable) return;
    try {
      await acknowledge(usable, request.path, outcome.value.key, bound!);
      ahead.push(outcome.value.file);
    } catch (error) {
      // Not acknowledged: the archiver's call for it pushes it again, and finds it there.
      context.onWarning(`unable to acknowledge '${outcome.value.file}' in the WAL spool '${usable}': ${(error as Error).message}`);
    }
  };
  let outcomes;
  try {
    outcomes = await pushWalFiles({...context, encoders}, requests, options.parallel, acknowledgeAhead);
  } finally {
    await encoders?.close();
  }
  if (usable) await pruneAcknowledgements(usable, options.pgWal).catch(() => {});
  const [mine] = outcomes;
  if (mine!.status === 'rejected') throw mine!.reason;
  return {requested: mine!.value, ahead: ahead.sort()};
}
