export * from './stderr-tail.js';
