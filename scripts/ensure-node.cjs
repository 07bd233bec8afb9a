#!/usr/bin/env node
// Brings a supported Node.js into the project when the machine's own is too old.
//
// Runs as the root package's postinstall under whatever Node npm happens to use, so it is
// plain CommonJS with no dependencies and no syntax newer than Node 12. On a machine whose
// Node already satisfies `engines`, it does nothing. Otherwise it installs the official Node
// build that the npm registry serves as a package (node-<platform>-<arch>) into
// .node-runtime/ and links it as node_modules/.bin/node, which npm puts first on PATH for
// every `npm run` and `npm test`, and which the launcher bin/synapse-backup runs the CLI with.
'use strict';

const fs = require('fs');
const path = require('path');
const childProcess = require('child_process');

const MINIMUM = [22, 13, 0];
const RUNTIME_MAJOR = '24';
const projectRoot = path.resolve(__dirname, '..');
const runtimeDir = path.join(projectRoot, '.node-runtime');
const binLink = path.join(projectRoot, 'node_modules', '.bin', 'node');

function parseVersion(text) {
  return String(text).replace(/^v/, '').split('.').map(function (part) { return parseInt(part, 10) || 0; });
}

function isSupported(version) {
  const parts = parseVersion(version);
  for (let i = 0; i < MINIMUM.length; i++) {
    if (parts[i] > MINIMUM[i]) return true;
    if (parts[i] < MINIMUM[i]) return false;
  }
  return true;
}

function log(message) {
  process.stderr.write('[synapse-backup] ' + message + '\n');
}

function removeStaleLink() {
  try {
    if (fs.lstatSync(binLink).isSymbolicLink()) fs.unlinkSync(binLink);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
}

function runningUnderProjectRuntime() {
  try {
    return fs.realpathSync(process.execPath).startsWith(fs.realpathSync(runtimeDir) + path.sep);
  } catch (error) {
    return false;
  }
}

function versionOf(binary) {
  const result = childProcess.spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

function main() {
  if (process.env.SYNAPSE_BACKUP_SKIP_NODE_BOOTSTRAP === '1') return;
  if (runningUnderProjectRuntime()) {
    // npm found our own link first on PATH: the machine's Node is the old one we replaced.
    return;
  }
  if (isSupported(process.versions.node)) {
    removeStaleLink();
    return;
  }

  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  const platform = { linux: 'linux', darwin: 'darwin' }[process.platform];
  if (!arch || !platform) {
    log('Node.js ' + process.versions.node + ' is too old (need >= ' + MINIMUM.join('.') + ') and no Node build is packaged for ' + process.platform + '-' + process.arch + '. Install Node.js 22 or newer.');
    process.exit(1);
  }
  const packageName = 'node-' + platform + '-' + arch;
  const runtimeBinary = path.join(runtimeDir, 'node_modules', packageName, 'bin', 'node');

  const present = fs.existsSync(runtimeBinary) ? versionOf(runtimeBinary) : undefined;
  if (!present || !isSupported(present)) {
    log('Node.js ' + process.versions.node + ' is older than ' + MINIMUM.join('.') + '; installing ' + packageName + '@' + RUNTIME_MAJOR + ' into .node-runtime/ for this project.');
    const npmCli = process.env.npm_execpath;
    const command = npmCli ? process.execPath : 'npm';
    const args = (npmCli ? [npmCli] : []).concat([
      'install', '--prefix', runtimeDir, '--no-save', '--no-package-lock', '--no-audit', '--no-fund',
      '--ignore-scripts', packageName + '@' + RUNTIME_MAJOR,
    ]);
    const result = childProcess.spawnSync(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    if (result.status !== 0) {
      log('Could not install ' + packageName + '@' + RUNTIME_MAJOR + ' from the npm registry. Install Node.js 22 or newer yourself and run npm install again.');
      process.exit(1);
    }
  }

  fs.mkdirSync(path.dirname(binLink), { recursive: true });
  removeStaleLink();
  fs.symlinkSync(path.relative(path.dirname(binLink), runtimeBinary), binLink);
  log('Using Node.js ' + versionOf(runtimeBinary) + ' from .node-runtime/ for npm scripts and bin/synapse-backup.');
}

main();
