import path from 'node:path';

import type {WalArchiveSettings} from '../config/index.js';
import {acknowledge, boundLocations, clearPending, filesToPushAhead, markPending, prepareSpool, processIdentity, pruneAcknowledgements, spoolDirectoryOf} from './acknowledgements.js';
import {pushWalFiles, type PushRequest, type PushResult, type WalPushContext} from './push-wal-file.js';
import {ENCODING_WORKERS_FROM, WalEncodingWorkers, adoptEarlyEncoders, encodingThreads} from './wal-encoding-workers.js';

export interface PushAheadOptions extends WalArchiveSettings {
  /** The process environment and ./.env, whose location settings the acknowledgements are bound to. */
  readonly env: {readonly process: Readonly<Record<string, string | undefined>>; readonly dotenv: Readonly<Record<string, string | undefined>>};
  /** The pg_wal the requested file is in. */
  readonly pgWal: string;
  /**
   * Called once, as soon as the requested file is durable, where the push goes on with files
   * marked pending in the spool: the archiver need not wait for them (see acknowledgements).
   */
  readonly onRequestedArchived?: () => void;
}

/**
 * Archives the file PostgreSQL asked for and, with it, up to `pushAhead` of the files waiting for
 * the archiver after it, `parallel` at a time. Resolves with the requested file's result once it
 * is durable everywhere (or rejects with its failure) and once every file pushed ahead has settled:
 * those that are durable everywhere are acknowledged in the spool, the others simply are not, and
 * the archiver's own call for them archives them (and reports what fails).
 *
 * The files pushed ahead are marked pending while this push has them in hand, and
 * `onRequestedArchived` is told as soon as the requested file is durable: the archiver goes on
 * with its calls, each answered as its file is acknowledged, while the rest are archived. When the
 * archiver's calls came only after the whole backlog, a push of 33 segments spent a tenth of its
 * time on them, one after another (measured with `npm run bench -- --suite wal`).
 */
export async function pushAhead(context: WalPushContext, requested: PushRequest, options: PushAheadOptions): Promise<{requested: PushResult; ahead: string[]}> {
  const bound = boundLocations(options.env.process, options.env.dotenv);
  const spool = options.pushAhead > 0 && bound !== undefined ? spoolDirectoryOf(requested.path, options.spoolDirectory) : undefined;
  const refusal = spool ? await prepareSpool(spool, bound!) : undefined;
  if (refusal) context.onWarning(refusal);
  const usable = spool && !refusal ? spool : undefined;
  // Without /proc no mark can say whether its push still runs: then the archiver waits for them all, as before.
  const identity = processIdentity();
  const waiting = await filesToPushAhead(options.pgWal, path.basename(requested.path), usable, bound, options.pushAhead, identity);
  const requests: PushRequest[] = [requested, ...waiting.map((name) => ({path: path.join(options.pgWal, name), systemIdentifier: requested.systemIdentifier}))];
  const marked = identity !== undefined && waiting.length > 0 && (await markPending(usable!, waiting, identity).then(
    () => true,
    (error: unknown) => {
      context.onWarning(`unable to mark files pending in the WAL spool '${usable}' (the archiver waits for the whole backlog instead): ${(error as Error).message}`);
      return false;
    },
  ));
  const ahead: string[] = [];
  // Workers started before the CLI loaded are used whatever the number of files: their start is paid.
  const encoders =
    adoptEarlyEncoders(context.compression, context.onWarning, encodingThreads()) ??
    (requests.length >= ENCODING_WORKERS_FROM ? new WalEncodingWorkers({threads: encodingThreads(), compression: context.compression, onWarning: context.onWarning}) : undefined);
  encoders?.readAhead(requests.map((request) => request.path));
  const acknowledgeAhead = async (request: PushRequest, outcome: PromiseSettledResult<PushResult>): Promise<void> => {
    if (request === requested) {
      if (outcome.status === 'fulfilled' && (marked || waiting.length === 0)) options.onRequestedArchived?.();
      return;
    }
    if (!usable) return;
    if (outcome.status === 'fulfilled') {
      try {
        await acknowledge(usable, request.path, outcome.value.key, bound!);
        ahead.push(outcome.value.file);
      } catch (error) {
        // Not acknowledged: the archiver's call for it pushes it again, and finds it there.
        context.onWarning(`unable to acknowledge '${outcome.value.file}' in the WAL spool '${usable}': ${(error as Error).message}`);
      }
    }
    // Only after the acknowledgement: a call that sees the mark gone looks for it next.
    if (marked) await clearPending(usable, request.path, identity!).catch(() => {});
  };
  let outcomes;
  try {
    outcomes = await pushWalFiles({...context, encoders}, requests, options.parallel, acknowledgeAhead);
  } finally {
    await encoders?.close();
    // Files never started (a cancelled push) keep no mark of a push about to end.
    if (marked) await Promise.all(waiting.map((name) => clearPending(usable!, name, identity!).catch(() => {})));
  }
  if (usable) await pruneAcknowledgements(usable, options.pgWal).catch(() => {});
  const [mine] = outcomes;
  if (mine!.status === 'rejected') throw mine!.reason;
  return {requested: mine!.value, ahead: ahead.sort()};
}
