import type {StorageBackendFactory} from 'synapse-backup/plugin-api';

const s3: StorageBackendFactory = {
  scheme: 's3',
  description: 'An S3 bucket, directly (BACKUP_S3_BUCKET, BACKUP_S3_PREFIX, BACKUP_S3_ENDPOINT for anything but AWS; credentials from the AWS SDK chain): streaming multipart uploads of bounded memory.',
  // The AWS SDK is loaded only where an S3 location is opened: every command discovers the backends,
  // and importing the SDK cost each of them (every `wal push` the archiver starts) a tenth of a second.
  create: async ({env, access}) => (await import('../s3-storage.js')).S3Storage.open(env, access),
};

export default async function registerStorageBackends(): Promise<StorageBackendFactory[]> {
  return [s3];
}
