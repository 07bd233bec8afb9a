export * from './build-event.js';
export * from './event-patterns.js';
export * from './notifier.js';
export * from './redact.js';
