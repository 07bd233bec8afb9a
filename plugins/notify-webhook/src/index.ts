export * from './webhook-sink.js';
