export * from './stage-events.js';
