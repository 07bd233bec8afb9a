export * from './backup-table.js';
export * from './bytes.js';
export * from './error-text.js';
export * from './restore-leftovers.js';
