import {readFile} from 'node:fs/promises';
import {createServer} from 'node:net';
import {setTimeout as sleep} from 'node:timers/promises';

/** A TCP port on loopback that nothing listens on right now, for a server a test starts. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number};
      server.close(() => resolve(port));
    });
  });
}

export async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export const isMounted = async (mountPoint: string): Promise<boolean> => (await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${mountPoint} `);
