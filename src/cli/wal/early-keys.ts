import {WalKeys} from '../../core/wal/wal-keys.js';
import {loadSettings} from '../runtime.js';

/**
 * Starts deriving the WAL archive's keys (one PBKDF2 of the passphrase, a tenth of a second or
 * more of one core) before the CLI loads: loading keeps one core busy and leaves the other idle,
 * where the derivation otherwise took a compression thread from the push's first files. The
 * command derives with the settings it resolves itself and finds this derivation only where they
 * name the same passphrase and iterations. Anything wrong with the settings is the command's to
 * report: here it only means nothing starts early.
 */
export function startArchiveKeyDerivation(): void {
  try {
    const settings = loadSettings(['new-backups', 'wal-archive']);
    if (settings.encryption) new WalKeys(settings.encryption);
  } catch {
    // The command reports it.
  }
}
