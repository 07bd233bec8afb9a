export * from './encryption.js';
export * from './hooks.js';
export * from './storage.js';
