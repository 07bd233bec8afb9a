export * from './heartbeat-sink.js';
