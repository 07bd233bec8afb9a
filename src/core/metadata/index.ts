export * from './backup-metadata.js';
export * from './canonical-json.js';
export * from './document-authenticator.js';
