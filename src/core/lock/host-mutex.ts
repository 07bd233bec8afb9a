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
 * The bound name once it is free; 'unguarded' where no abstract socket can be bound (macOS, a
 * sandbox without Unix sockets); undefined if another holder kept it past the deadline.
 */
async function holdName(name: string, timeoutMs: number): Promise<Server | 'unguarded' | undefined> {
  if (process.platform !== 'linux') return 'unguarded';
  const address = `\0synapse-backup/${createHash('sha256').update(name).digest('hex')}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const server = await bind(address).catch(() => 'unguarded' as const);
    if (server !== undefined) return server;
    if (Date.now() >= deadline) return undefined;
    await sleep(RETRY_DELAY_MS);
  }
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
  const held = await holdName(name, timeoutMs);
  if (held === undefined) return false;
  try {
    await work();
    return true;
  } finally {
    if (held !== 'unguarded') await new Promise<void>((resolve) => held.close(() => resolve()));
  }
}
