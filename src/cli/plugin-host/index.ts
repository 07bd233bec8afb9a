export * from './discover-plugins.js';
