export * from './config/index.js';
export * from './errors/index.js';
export * from './events/index.js';
export * from './metadata/index.js';
export * from './naming/index.js';
export * from './retention/index.js';
export * from './secrets/index.js';
export * from './services/index.js';
