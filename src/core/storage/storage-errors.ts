import type {StorageBackend} from '../../contracts/storage.js';
import {SynapseError, errnoCode, isSynapseError} from '../errors/index.js';

/** Actions that read one named object: for them, ENOENT means that object does not exist. */
const READING = /^(read|find|get|stat)\b/;

/** Explains a storage failure whatever the backend, from the errno conventions of the contract. */
export function storageError(error: unknown, storage: StorageBackend, action: string, key?: string): SynapseError {
  if (isSynapseError(error)) return error;
  const code = errnoCode(error);
  const reason = error instanceof Error ? error.message : String(error);
  const object = key ? `'${key}' at ${storage.location}` : `'${storage.location}'`;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT': {
      return new SynapseError('E_STORAGE_FULL', {message: `unable to ${action} ${object}: no space left on the backup storage`, cause: error});
    }
    case 'EACCES':
    case 'EPERM':
    case 'EROFS': {
      return new SynapseError('E_STORAGE_UNWRITABLE', {message: `unable to ${action} ${object}: permission denied (${code})`, cause: error});
    }
    case 'ENOENT': {
      // A missing object is a missing backup only to a reader that asked for one; to a writer (or a
      // listing), the location itself is gone: a share that dropped, a directory removed.
      if (key !== undefined && READING.test(action)) return new SynapseError('E_BACKUP_NOT_FOUND', {message: `unable to ${action} ${object}: it does not exist`, cause: error});
      return new SynapseError('E_STORAGE', {
        message: `unable to ${action} ${object}: the backup location is gone (${reason})`,
        suggestion: 'Check that the backup storage is there and mounted (BACKUP_DIR); earlier backups are untouched.',
        cause: error,
      });
    }
    default: {
      return new SynapseError('E_STORAGE', {message: `unable to ${action} ${object}: ${reason}`, cause: error});
    }
  }
}
