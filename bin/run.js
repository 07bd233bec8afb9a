#!/usr/bin/env node
// Checked before anything else is loaded: on an old Node, oclif and its dependencies fail with
// syntax errors and stack traces instead of saying what is wrong.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `synapse-backup: Node.js ${process.versions.node} is too old; synapse-backup needs Node.js 22.13 or newer. Run it through bin/synapse-backup after \`npm install\` (or \`npm ci\`), which brings its own Node, or install Node.js 22 or newer.\n`,
  );
  process.exit(2);
}

// PostgreSQL's archiver calls `wal push` once per WAL file; a file an earlier push archived ahead
// of its asking is acknowledged in the spool, and this answers it before oclif loads (see acknowledged-push).
// Through the launcher, the archiver has its answer from a pipe (see archiver-channel), taken first
// so that every way out of here writes it.
const walPush = process.argv[2] === 'wal' && process.argv[3] === 'push';
if (walPush) {
  const {takeArchiverChannel} = await import('../dist/cli/wal/archiver-channel.js');
  takeArchiverChannel(process.env);
  const {acknowledgedPush} = await import('../dist/cli/wal/acknowledged-push.js');
  if (await acknowledgedPush(process.argv.slice(4), process.env)) process.exit(0);
}

// Compression runs one block per core on libuv's threadpool, which file I/O and key derivation
// share; its default of 4 threads would cap a many-core machine at 4. Set before anything uses it.
// `wal push` compresses several files at once, and more threads than cores only make their blocks
// take turns on the cores and evict each other's tables from the caches: measured with
// `npm run bench -- --suite wal` on two cores, one thread per core archived about a tenth faster.
const {availableParallelism} = await import('node:os');
process.env.UV_THREADPOOL_SIZE ??= String(walPush ? Math.max(2, availableParallelism()) : Math.max(4, availableParallelism() + 2));

// `wal push` derives the archive's key, and for a backlog reads and compresses its first files, on
// the core the loading below leaves idle (see early-start).
if (walPush) {
  const {startEarlyWalPush} = await import('../dist/cli/wal/early-start.js');
  await startEarlyWalPush(process.argv.slice(4));
}

// Plugins a user installed run with our privileges the moment oclif loads them: judge where they
// live first, and leave them out when another user could have written there (see plugin-directory-trust).
const {pluginDirectoryVerdict} = await import('../dist/cli/plugin-host/plugin-directory-trust.js');
const {refusal} = pluginDirectoryVerdict();

const {execute} = await import('@oclif/core');
await execute({dir: import.meta.url, ...(refusal ? {loadOptions: {userPlugins: false}} : {})});

// The command has finished. What still keeps the process alive now is a storage call that timed
// out but never returned (a dead network mount, an s3fs that stopped answering): it must not keep
// a cron job for minutes. Once the output is written, exit with the command's status. Unref'd, so
// an ordinary run ends by itself before this ever fires.
const finished = setInterval(() => {
  if (process.stdout.writableLength === 0 && process.stderr.writableLength === 0) process.exit();
}, 500);
finished.unref();
