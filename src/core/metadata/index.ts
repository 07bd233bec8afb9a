export * from './backup-metadata.js';
