import {MountStorage} from '@synapse-backup/plugin-storage-mount';
import type {StorageBackendFactory} from 'synapse-backup/plugin-api';

/**
 * s3fs renames by copying then deleting, never atomically, has no hard links, and uploads a file
 * when it is fsynced or closed. What keeps a backup from appearing before it is complete is the
 * core's own order (a staging name, then the final name, then the metadata last as the commit
 * marker); this backend adds the mount check (fuse.s3fs only: a bucket that is not mounted must not
 * become a directory on the local disk), no link(), and a read-back of the size after each upload.
 */
const s3fsMount: StorageBackendFactory = {
  scheme: 's3fs',
  description: 'A directory on an s3fs-fuse mount of a bucket (BACKUP_DIR); refuses to write unless it is on an active fuse.s3fs mount, and reads back the size of every upload.',
  create: ({location, access, create}) => MountStorage.open(location, access, {create: create === true, scheme: 's3fs', fsTypes: ['fuse.s3fs'], noHardLinks: true, verifySize: true, noSpace: true}),
};

export default async function registerStorageBackends(): Promise<StorageBackendFactory[]> {
  return [s3fsMount];
}
