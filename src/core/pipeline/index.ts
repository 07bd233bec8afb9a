export * from './block-pool.js';
export * from './compression.js';
export * from './failure-recorder.js';
export * from './observers.js';
export * from './stream-chain.js';
export * from './dump-completion.js';
export * from './decode-stages.js';
export * from './tar-completion.js';
