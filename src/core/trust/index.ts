export * from './backup-trust.js';
export * from './document-authenticator.js';
