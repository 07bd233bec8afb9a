import type {StorageBackendFactory} from 'synapse-backup/plugin-api';

import {DEFAULT_NETWORK_FSTYPES} from '../mountinfo.js';
import {MountStorage} from '../mount-storage.js';

function fsTypes(raw: string | undefined): readonly string[] {
  const listed = (raw ?? '')
    .split(',')
    .map((type) => type.trim())
    .filter(Boolean);
  return listed.length > 0 ? listed : DEFAULT_NETWORK_FSTYPES;
}

const networkMount: StorageBackendFactory = {
  scheme: 'mount',
  description: `A directory on a network file system mounted by the OS (BACKUP_DIR); refuses to write unless it is on an active mount of type ${DEFAULT_NETWORK_FSTYPES.join(', ')} (BACKUP_MOUNT_FSTYPES).`,
  create: ({location, access, create, env}) => MountStorage.open(location, access, {create: create === true, fsTypes: fsTypes(env.BACKUP_MOUNT_FSTYPES)}),
};

export default async function registerStorageBackends(): Promise<StorageBackendFactory[]> {
  return [networkMount];
}
