export * from './storage-lock.js';
export * from './host-mutex.js';
