export * from './run-journal.js';
