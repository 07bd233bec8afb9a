export * from './discover-plugins.js';
export * from './plugin-directory-trust.js';
