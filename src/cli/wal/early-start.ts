import path from 'node:path';

import {boundLocations, filesToPushAhead, spoolDirectoryOf} from '../../core/wal/acknowledgements.js';
import {ENCODING_WORKERS_FROM, startEarlyEncoding} from '../../core/wal/wal-encoding-workers.js';
import {WalKeys} from '../../core/wal/wal-keys.js';
import {loadSettings} from '../runtime.js';

/**
 * Starts the CPU's part of `wal push ARGS` before the CLI loads: loading keeps one core busy for
 * about half a second and leaves the other idle. It derives the archive's keys (one PBKDF2 of the
 * passphrase, a tenth of a second or more of one core) and, where the push will archive a backlog
 * (ENCODING_WORKERS_FROM files or more waiting), starts the encoding workers on the first files.
 * The command resolves its settings itself and uses what started here only where they name the
 * same passphrase and iterations, the same compression, the same files. Anything wrong with the
 * settings or the files is the command's to report: here it only means nothing starts early.
 */
export async function startEarlyWalPush(args: readonly string[]): Promise<void> {
  let settings;
  try {
    settings = loadSettings(['new-backups', 'wal-archive']);
    if (settings.encryption) new WalKeys(settings.encryption);
  } catch {
    // The command reports it.
    return;
  }
  const [walPath] = args;
  if (walPath === undefined || walPath.startsWith('-')) return;
  try {
    const pgWal = path.dirname(path.resolve(walPath));
    const requested = path.basename(walPath);
    const spool = spoolDirectoryOf(walPath, settings.walArchive.spoolDirectory);
    const bound = boundLocations(process.env);
    // The files pushAhead will take, named as it names them: the one asked for as given, the others in pg_wal.
    const waiting = await filesToPushAhead(pgWal, requested, spool, bound, settings.walArchive.pushAhead);
    if (waiting.length + 1 < ENCODING_WORKERS_FROM) return;
    startEarlyEncoding({compression: settings.compression, files: [walPath, ...waiting.map((name) => path.join(pgWal, name))]});
  } catch {
    // The push finds what is wrong with the files itself.
  }
}
