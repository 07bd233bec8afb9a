import type {StorageBackendFactory} from 'synapse-backup/plugin-api';

import {LocalDirectoryStorage} from '../local-directory-storage.js';

const localDirectory: StorageBackendFactory = {
  scheme: 'local',
  description: 'A directory on a local or mounted file system (BACKUP_DIR).',
  create: ({location, access, create}) => LocalDirectoryStorage.open(location, access, {create: create === true}),
};

export default async function registerStorageBackends(): Promise<StorageBackendFactory[]> {
  return [localDirectory];
}
