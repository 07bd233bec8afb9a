import {parse as parseDotenv} from 'dotenv';
import {readFileSync} from 'node:fs';
import path from 'node:path';

import {resolveSettings} from '../../core/config/settings.js';
import {BlockPool} from '../../core/pipeline/block-pool.js';
import {BLOCK_SIZE, createBlockCompressor, type BlockCompressor, type CompressionSettings} from '../../core/pipeline/compression.js';
import {acknowledgementMatches, boundLocations, readyFiles, spoolDirectoryOf, spoolIsPrivate} from '../../core/wal/acknowledgements.js';
import {encodeWalFile, type EncodedWalFile} from '../../core/wal/archived-file.js';

/*
 * PostgreSQL's archiver waits for `wal push` with every file it has, and loading the CLI (oclif,
 * the plugins, the locations) takes a core for a fifth of a second before a byte is read. Reading,
 * hashing and compressing need none of that: for the archiver's own call (`wal push FILE`, nothing
 * else) the launcher starts them here, before the CLI loads, for the file asked for and the first
 * files waiting after it; the command takes them over (takeEarlyEncoding) once its settings are
 * known and match, and drops them otherwise. Nothing here writes anywhere: a push that fails to
 * start has read some files for nothing, and that is all.
 */

export interface EarlyEncoding {
  readonly compression: CompressionSettings;
  readonly compressor: BlockCompressor;
  readonly blocks: BlockPool;
  /** The files being read, hashed and compressed, by resolved path. */
  readonly files: Map<string, Promise<EncodedWalFile>>;
  readonly abort: AbortController;
}

let started: EarlyEncoding | undefined;

function dotenvOf(cwd: string): Record<string, string> {
  try {
    return parseDotenv(readFileSync(path.join(cwd, '.env')));
  } catch {
    // Missing or unreadable: the command says so, if it matters.
    return {};
  }
}

/**
 * Starts reading and compressing for `wal push FILE` (args: what follows `wal push`), as far as the
 * settings allow without the CLI: anything unusual (flags, settings that do not resolve) starts
 * nothing, and the command does all the work as before.
 */
export function startEarlyEncoding(args: readonly string[], env: Readonly<Record<string, string | undefined>>, cwd: string): void {
  if (started || args.length !== 1 || args[0]!.startsWith('-')) return;
  let settings;
  const dotenv = dotenvOf(cwd);
  try {
    settings = resolveSettings({process: env, dotenv, cwd}, {uses: ['new-backups', 'wal-archive']});
  } catch {
    return;
  }
  const requested = path.resolve(cwd, args[0]!);
  const compressor = createBlockCompressor(settings.compression);
  const {walArchive} = settings;
  const early: EarlyEncoding = {
    compression: settings.compression,
    compressor,
    // As walPushContext sizes its own (see there).
    blocks: new BlockPool(BLOCK_SIZE, 8 * walArchive.parallel),
    files: new Map(),
    abort: new AbortController(),
  };
  started = early;
  const encode = (file: string): void => {
    const encoding = encodeWalFile(file, early.compression, {pool: early.blocks, compressor, signal: early.abort.signal});
    // The command reports failures of the files it pushes; the others are of no one's concern.
    encoding.catch(() => {});
    early.files.set(file, encoding);
  };
  encode(requested);
  // The files the push will archive ahead of the archiver's asking, as pushAhead chooses them; only
  // the first few, which the command's own WAL_PUSH_PARALLEL workers take first.
  const spool = walArchive.pushAhead > 0 ? spoolDirectoryOf(requested, walArchive.spoolDirectory) : undefined;
  const bound = boundLocations(env, dotenv);
  if (!spool || bound === undefined || walArchive.parallel < 2 || !spoolIsPrivate(spool)) return;
  const pgWal = path.dirname(requested);
  void readyFiles(pgWal).then(
    (names) => {
      // Once the command has taken over, its own workers encode what is not started yet.
      if (started !== early) return;
      const waiting = names.filter((name) => path.join(pgWal, name) !== requested && !acknowledgementMatches(spool, path.join(pgWal, name), bound));
      for (const name of waiting.slice(0, Math.min(walArchive.pushAhead, walArchive.parallel - 1))) encode(path.join(pgWal, name));
    },
    () => {},
  );
}

/**
 * The early encoding, for a command whose compression is `compression`: undefined where none was
 * started or it used other settings (then it is stopped, and its contexts freed once its files
 * have settled). Taken once.
 */
export function takeEarlyEncoding(compression: CompressionSettings): EarlyEncoding | undefined {
  const early = started;
  started = undefined;
  if (!early) return undefined;
  if (early.compression.algorithm === compression.algorithm && early.compression.level === compression.level) return early;
  early.abort.abort();
  void Promise.allSettled(early.files.values()).then(() => early.compressor.close());
  return undefined;
}
