export * from './schedule-entries.js';
