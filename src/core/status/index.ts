export * from './alert-plan.js';
export * from './evaluate-status.js';
export * from './status-policy.js';
export * from './evaluate-locations.js';
export * from './evaluate-archive.js';
