export * from './mountinfo.js';
export * from './mount-storage.js';
