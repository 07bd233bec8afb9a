import type {StorageBackendFactory} from 'synapse-backup/plugin-api';

import {S3Storage} from '../s3-storage.js';

const s3: StorageBackendFactory = {
  scheme: 's3',
  description: 'An S3 bucket, directly (BACKUP_S3_BUCKET, BACKUP_S3_PREFIX, BACKUP_S3_ENDPOINT for anything but AWS; credentials from the AWS SDK chain): streaming multipart uploads of bounded memory.',
  create: ({env, access}) => S3Storage.open(env, access),
};

export default async function registerStorageBackends(): Promise<StorageBackendFactory[]> {
  return [s3];
}
