export * from './storage-contract.js';
export * from './sink-contract.js';
