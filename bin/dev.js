#!/usr/bin/env node
// Runs the TypeScript sources directly (no build), for development.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(`synapse-backup: Node.js ${process.versions.node} is too old; use Node.js 22.13 or newer (npm install brings one: run it as npm exec -- ./bin/dev.js).\n`);
  process.exit(2);
}

// Registered from here rather than with `node --import tsx`, which resolves tsx from the caller's directory.
const {register} = await import('tsx/esm/api');
register();
const {execute} = await import('@oclif/core');
await execute({development: true, dir: import.meta.url});
