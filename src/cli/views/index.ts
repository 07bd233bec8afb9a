export * from './stage-display.js';
