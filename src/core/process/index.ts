export * from './stderr-tail.js';
export * from './block-pipe.js';
export * from './child-environment.js';
