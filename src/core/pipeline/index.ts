export * from './compression.js';
export * from './failure-recorder.js';
export * from './observers.js';
