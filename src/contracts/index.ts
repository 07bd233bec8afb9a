export * from './encryption.js';
export * from './hooks.js';
export * from './notification.js';
export * from './plugin-api.js';
export * from './storage.js';
