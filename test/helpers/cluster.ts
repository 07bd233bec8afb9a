import {execa} from 'execa';
import {existsSync, readFileSync} from 'node:fs';
import {appendFile, chmod, mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';

import {freePort} from './services.js';

export const PG_BIN = process.env.SYNAPSE_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export {freePort};

export interface ThrowawayCluster {
  readonly port: number;
  /** Holds data/, the server log and the socket. */
  readonly directory: string;
  /** The data directory. */
  readonly data: string;
  url(user: string, database: string, password?: string): string;
  psql(sql: string, database?: string): Promise<string>;
  /** Stops the server; removes its directory unless it was opened with `keep`. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Trust only the postgres superuser; everyone else needs a SCRAM password. */
  readonly passwordAuth?: boolean;
  /**
   * A directory to keep the cluster in across runs (the benchmark's database is slow to build).
   * Created on first use, reused after; never removed by stop().
   */
  readonly keepIn?: string;
  /** Lines appended to postgresql.conf before the first start (archive_mode, archive_command...). */
  readonly settings?: readonly string[];
}

function asPostgres(command: string, args: string[]) {
  return execa('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, command), ...args]);
}

/**
 * A PostgreSQL cluster of its own, for tests that need settings the machine's server lacks
 * (password authentication) and for the benchmark. PostgreSQL refuses to run as root, so it runs as 'postgres'.
 */
export async function startThrowawayCluster(options: ClusterOptions = {}): Promise<ThrowawayCluster> {
  let directory: string;
  if (options.keepIn) {
    directory = options.keepIn;
    await mkdir(directory, {recursive: true});
  } else directory = await mkdtemp(path.join(tmpdir(), 'synapse-cluster-'));
  await execa('chown', ['postgres', directory]);
  await chmod(directory, 0o700);
  const data = path.join(directory, 'data');
  if (!existsSync(path.join(data, 'PG_VERSION'))) {
    await rm(data, {recursive: true, force: true});
    await asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    if (options.passwordAuth) {
      await writeFile(
        path.join(data, 'pg_hba.conf'),
        ['local all postgres trust', 'host all postgres 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 scram-sha-256', 'local all all scram-sha-256', ''].join('\n'),
      );
    }
  }
  if (options.settings?.length) await appendFile(path.join(data, 'postgresql.conf'), `\n${options.settings.join('\n')}\n`);
  // A kept cluster may still be running after an interrupted run; stop it so its port is ours again.
  await asPostgres('pg_ctl', ['-D', data, '-m', 'fast', 'stop']).catch(() => {});
  const port = await freePort();
  await asPostgres('pg_ctl', ['-D', data, '-l', path.join(directory, 'log'), '-w', 'start', '-o', `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${directory}`]);
  const cluster: ThrowawayCluster = {
    port,
    directory,
    data,
    url(user, database, password) {
      return `postgresql://${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${port}/${database}`;
    },
    async psql(sql, database = 'postgres') {
      const result = await execa('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', cluster.url('postgres', database), '-c', sql]);
      return result.stdout;
    },
    async stop() {
      if (options.keepIn) {
        await asPostgres('pg_ctl', ['-D', data, '-m', 'fast', 'stop']).catch(() => {});
        return;
      }
      await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => {});
      await rm(directory, {recursive: true, force: true});
    },
  };
  return cluster;
}

/** The uid and gid of the postgres user, who owns throwaway clusters and runs their archive_command. */
export function postgresUser(): {uid: number; gid: number} {
  const [, , uid, gid] = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.startsWith('postgres:'))!.split(':');
  return {uid: Number(uid), gid: Number(gid)};
}

/** Polls `condition` until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
