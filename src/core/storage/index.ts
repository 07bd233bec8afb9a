export * from './object-io.js';
export * from './storage-errors.js';
export * from './bounded-storage.js';
export * from './retrying-storage.js';
export * from './decorate-storage.js';
export * from './listing.js';
export * from './read-range.js';
