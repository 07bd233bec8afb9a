import {closeSync, fstatSync, writeSync} from 'node:fs';

/**
 * The launcher (bin/synapse-backup) runs the archiver's `wal push FILE` in the background and
 * answers the archiver with the exit status this process writes to a pipe it names in
 * SYNAPSE_BACKUP_ARCHIVER_FD: 0 as soon as FILE is durable (`releaseArchiver`), while the push
 * goes on with the files it archives ahead; otherwise the status this process exits with. A
 * process that dies before writing one leaves the pipe empty, which the launcher takes for a
 * failure: PostgreSQL then calls again.
 */
let channel: number | undefined;

/** Takes the pipe the launcher names, once, and out of the environment that child processes inherit. */
export function takeArchiverChannel(env: NodeJS.ProcessEnv): void {
  const named = env.SYNAPSE_BACKUP_ARCHIVER_FD;
  delete env.SYNAPSE_BACKUP_ARCHIVER_FD;
  if (channel !== undefined || named === undefined || !/^\d+$/.test(named)) return;
  const descriptor = Number(named);
  try {
    // Only a pipe: a descriptor that is a file (a setting left over in someone's environment) is never written to.
    if (!fstatSync(descriptor).isFIFO()) return;
  } catch {
    return;
  }
  channel = descriptor;
  process.on('exit', (code) => releaseArchiver(code));
}

/** Tells the archiver the push's status now, once; the process may go on. Nothing without a channel. */
export function releaseArchiver(status: number): void {
  if (channel === undefined) return;
  const descriptor = channel;
  channel = undefined;
  try {
    writeSync(descriptor, `${status}\n`);
  } catch {
    // The launcher is gone: nobody waits for the answer.
  }
  try {
    closeSync(descriptor);
  } catch {
    // Closed already.
  }
}
