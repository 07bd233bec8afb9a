export * from './catalogue.js';
export * from './synapse-error.js';
export * from './cancelled.js';
export * from './plugin-errors.js';
