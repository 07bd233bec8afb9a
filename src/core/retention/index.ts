export * from './apply-retention-policy.js';
