export * from './read-catalog.js';
