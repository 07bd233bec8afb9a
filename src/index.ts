export * from './contracts/index.js';
export * from './core/index.js';
