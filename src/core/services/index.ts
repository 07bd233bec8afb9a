export * from './cleanup-backups.js';
export * from './list-backups.js';
export * from './restore-backup.js';
export * from './run-backup.js';
export * from './document-trust.js';
export * from './restore-leftovers.js';
export * from './check-setup.js';
