export * from './wal-file-names.js';
export * from './wal-keys.js';
export * from './archive-identity.js';
export * from './archived-file.js';
export * from './archived-copies.js';
export * from './push-wal-file.js';
export * from './fetch-wal-file.js';
