import {existsSync, readFileSync} from 'node:fs';
import {homedir} from 'node:os';
import path from 'node:path';

import {SynapseError} from '../errors/index.js';

type Env = Readonly<Record<string, string | undefined>>;

/** The libpq variable each service-file keyword stands for, as far as our own connections use them. */
const KEYWORD_VARIABLES: Readonly<Record<string, string>> = {
  host: 'PGHOST',
  port: 'PGPORT',
  user: 'PGUSER',
  dbname: 'PGDATABASE',
  password: 'PGPASSWORD',
  options: 'PGOPTIONS',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
};

function parseServiceFile(text: string): Map<string, Record<string, string>> {
  const services = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = {};
      services.set(section[1]!.trim(), current);
      continue;
    }
    const separator = line.indexOf('=');
    if (current && separator > 0) current[line.slice(0, separator).trim()] = line.slice(separator + 1).trim();
  }
  return services;
}

/**
 * The settings of a pg_service.conf service, as libpq finds them: the user's file (PGSERVICEFILE,
 * else ~/.pg_service.conf), then the system's (PGSYSCONFDIR/pg_service.conf; Debian keeps it in
 * /etc/postgresql-common). They are returned as the PG* variables they stand for, to be placed
 * between the URL (which wins) and the environment (which they win over), as in libpq.
 */
export function serviceDefaults(service: string, env: Env): Record<string, string> {
  const files = [env.PGSERVICEFILE ?? path.join(homedir(), '.pg_service.conf'), path.join(env.PGSYSCONFDIR ?? '/etc/postgresql-common', 'pg_service.conf')];
  for (const file of files) {
    if (!existsSync(file)) continue;
    const settings = parseServiceFile(readFileSync(file, 'utf8')).get(service);
    if (!settings) continue;
    const variables: Record<string, string> = {};
    for (const [keyword, value] of Object.entries(settings)) {
      const variable = KEYWORD_VARIABLES[keyword];
      if (variable) variables[variable] = value;
    }
    return variables;
  }
  throw new SynapseError('E_CONFIG', {
    message: `unable to use service '${service}': it is defined in none of ${files.map((file) => `'${file}'`).join(', ')}`,
    suggestion: 'Define the service in ~/.pg_service.conf of the user that runs synapse-backup (or point PGSERVICEFILE at the file), or fix PGSERVICE / service= in DATABASE_URL.',
  });
}
