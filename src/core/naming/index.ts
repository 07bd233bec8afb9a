export * from './backup-name.js';
