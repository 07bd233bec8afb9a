export * from './client-tools.js';
export * from './connect.js';
export * from './database-target.js';
export * from './child-processes.js';
export * from './database-admin.js';
export * from './restricted-dump.js';
export * from './libpq-ssl.js';
export * from './pg-service.js';
