#!/usr/bin/env node
// Checked before anything else is loaded: on an old Node, oclif and its dependencies fail with
// syntax errors and stack traces instead of saying what is wrong.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `synapse-backup: Node.js ${process.versions.node} is too old; synapse-backup needs Node.js 22.13 or newer. In a checkout, run it as \`npx synapse-backup\` after \`npm install\`, which brings its own Node; elsewhere install Node.js 22 or newer.\n`,
  );
  process.exit(1);
}

const {execute} = await import('@oclif/core');
await execute({dir: import.meta.url});
