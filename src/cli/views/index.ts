export * from './stage-display.js';
export * from './stage-view.js';
