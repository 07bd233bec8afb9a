import {createHash} from 'node:crypto';
import {createServer, type Server} from 'node:net';
import {setTimeout as sleep} from 'node:timers/promises';

const RETRY_DELAY_MS = 5;

/** Binds `address`; undefined when another holder has it, an error when sockets cannot be bound here at all. */
function bind(address: string): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(undefined) : reject(error)));
    server.listen({path: address, exclusive: true}, () => {
      // Held only to keep the name; it must not keep the process alive.
      server.unref();
      resolve(server);
    });
  });
}

/**
 * Runs `work` while no other process of this host (nor another caller in this one) runs work under
 * the same name, for critical sections of a few milliseconds. The mutex is a Unix socket in Linux's
 * abstract namespace: binding the name fails while another holder has it, and the kernel frees it
 * when its holder exits, so a crash cannot leave it held (a lock file could). Where there is no
 * abstract namespace (macOS) or no socket can be bound, `work` runs unguarded, as it did before.
 * Resolves false, without running `work`, if the mutex was not free within `timeoutMs`.
 */
export async function runExclusivelyOnThisHost(name: string, timeoutMs: number, work: () => Promise<void>): Promise<boolean> {
  if (process.platform !== 'linux') {
    await work();
    return true;
  }
  const address = `\0synapse-backup/${createHash('sha256').update(name).digest('hex')}`;
  const deadline = Date.now() + timeoutMs;
  let server: Server | undefined;
  for (;;) {
    try {
      server = await bind(address);
    } catch {
      await work();
      return true;
    }
    if (server) break;
    if (Date.now() >= deadline) return false;
    await sleep(RETRY_DELAY_MS);
  }
  try {
    await work();
    return true;
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
