import {createHash} from 'node:crypto';
import {createServer, type Server} from 'node:net';
import {setTimeout as sleep} from 'node:timers/promises';

const RETRY_DELAY_MS = 5;
/** How long a failure to bind that is not another holder (EMFILE, say) is tried again before it is reported. */
const FAILURE_RETRY_MS = 1000;

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

/** The host-wide mutex could not be taken for a reason other than another holder (no descriptor left, sockets refused): never a reason to run unguarded. */
export class HostMutexUnavailable extends Error {
  constructor(
    readonly mutex: string,
    override readonly cause: unknown,
  ) {
    super(`unable to take the host-wide mutex '${mutex}': ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'HostMutexUnavailable';
  }

  get code(): string | undefined {
    return (this.cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

/**
 * The bound name once it is free; 'unguarded' where the platform has no abstract namespace
 * (macOS); undefined if another holder kept it past the deadline. Any other failure to bind (no
 * file descriptor left, say) is tried again for a second (within the deadline) and then thrown:
 * a mutex that cannot be taken must not let two holders in.
 */
async function holdName(name: string, timeoutMs: number): Promise<Server | 'unguarded' | undefined> {
  if (process.platform !== 'linux') return 'unguarded';
  const address = `\0synapse-backup/${createHash('sha256').update(name).digest('hex')}`;
  const deadline = Date.now() + timeoutMs;
  let failingSince: number | undefined;
  for (;;) {
    let failure: unknown;
    const server = await bind(address).catch((error: unknown) => void (failure = error));
    if (server) return server;
    const now = Date.now();
    if (failure === undefined) failingSince = undefined;
    else failingSince ??= now;
    // The timeout is for waiting on another holder; a failure of our own is given a second to pass.
    if (failingSince !== undefined && (now >= deadline || now - failingSince >= FAILURE_RETRY_MS)) throw new HostMutexUnavailable(name, failure);
    if (now >= deadline) return undefined;
    await sleep(RETRY_DELAY_MS);
  }
}

/**
 * Runs `work` while no other process of this host (nor another caller in this one) runs work under
 * the same name, for critical sections of a few milliseconds. The mutex is a Unix socket in Linux's
 * abstract namespace: binding the name fails while another holder has it, and the kernel frees it
 * when its holder exits, so a crash cannot leave it held (a lock file could). Where there is no
 * abstract namespace (macOS), `work` runs unguarded, as it did before. Resolves false, without
 * running `work`, if the mutex was not free within `timeoutMs`; rejects with HostMutexUnavailable,
 * without running it, where the name could not be bound at all.
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
