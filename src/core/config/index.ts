export * from './settings.js';
export * from './duration.js';
