export * from './quantities.js';
