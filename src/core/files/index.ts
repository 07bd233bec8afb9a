export * from './write-file-atomically.js';
