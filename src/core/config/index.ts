export * from './settings.js';
export * from './duration.js';
export * from './locations.js';
export * from './portable-settings.js';
