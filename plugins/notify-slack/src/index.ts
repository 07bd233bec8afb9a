export * from './slack-message.js';
export * from './slack-sink.js';
