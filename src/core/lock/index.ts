export * from './storage-lock.js';
