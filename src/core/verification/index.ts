export * from './verification-record.js';
export * from './verify-stored-file.js';
export * from './read-back.js';
