export * from './object-io.js';
export * from './storage-errors.js';
