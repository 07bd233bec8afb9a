export {S3Storage, s3Error} from './s3-storage.js';
export {DEFAULT_S3_SETTINGS, largestObject, partSizeFor, readS3Settings, type S3Settings} from './s3-settings.js';
