export * from './email-sink.js';
