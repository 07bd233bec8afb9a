export * from './location.js';
export * from './copy-backup.js';
export * from './located-backups.js';
export * from './sync-locations.js';
export * from './replicate-backup.js';
export * from './fallback.js';
export * from './retention-across-locations.js';
