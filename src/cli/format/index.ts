export * from './backup-table.js';
export * from '../../core/units/index.js';
export * from './error-text.js';
export * from './restore-leftovers.js';
export * from './check-report.js';
