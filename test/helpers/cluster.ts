import {execa} from 'execa';
import {chmod, mkdtemp, rm, writeFile} from 'node:fs/promises';
import {createServer} from 'node:net';
import {tmpdir} from 'node:os';
import path from 'node:path';

const PG_BIN = process.env.SYNAPSE_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number};
      server.close(() => resolve(port));
    });
  });
}

export interface ThrowawayCluster {
  readonly port: number;
  readonly directory: string;
  url(user: string, database: string, password?: string): string;
  psql(sql: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A PostgreSQL cluster of its own, for tests that need settings the machine's server lacks
 * (password authentication). PostgreSQL refuses to run as root, so it runs as 'postgres'.
 */
export async function startThrowawayCluster(options: {passwordAuth?: boolean} = {}): Promise<ThrowawayCluster> {
  const directory = await mkdtemp(path.join(tmpdir(), 'synapse-cluster-'));
  await execa('chown', ['postgres', directory]);
  await chmod(directory, 0o700);
  const data = path.join(directory, 'data');
  const asPostgres = (command: string, args: string[]) => execa('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, command), ...args]);
  await asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  if (options.passwordAuth) {
    await writeFile(
      path.join(data, 'pg_hba.conf'),
      ['local all postgres trust', 'host all postgres 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 scram-sha-256', 'local all all scram-sha-256', ''].join('\n'),
    );
  }
  const port = await freePort();
  await asPostgres('pg_ctl', ['-D', data, '-l', path.join(directory, 'log'), '-w', 'start', '-o', `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${directory}`]);
  const cluster: ThrowawayCluster = {
    port,
    directory,
    url(user, database, password) {
      return `postgresql://${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${port}/${database}`;
    },
    async psql(sql, database = 'postgres') {
      const result = await execa('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', cluster.url('postgres', database), '-c', sql]);
      return result.stdout;
    },
    async stop() {
      await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => {});
      await rm(directory, {recursive: true, force: true});
    },
  };
  return cluster;
}
