export * from './command-sink.js';
