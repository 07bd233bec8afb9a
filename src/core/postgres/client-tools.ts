import {execa} from 'execa';
import path from 'node:path';

import {SynapseError} from '../errors/index.js';
import {minimalChildEnvironment} from '../process/index.js';

export type ClientTool = 'pg_dump' | 'psql' | 'pg_basebackup';

export interface ClientToolInfo {
  readonly tool: ClientTool;
  readonly command: string;
  readonly version: string;
  readonly major: number;
}

/** PG_BIN_DIR when set, so a machine with several PostgreSQL versions can pick one; else PATH. */
export function clientToolCommand(tool: ClientTool, pgBinDir: string | undefined): string {
  return pgBinDir ? path.join(pgBinDir, tool) : tool;
}

/** Parses `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` and `psql (PostgreSQL) 17beta1`. */
export function parseClientToolVersion(output: string): {version: string; major: number} | undefined {
  const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?([a-z]+\d*)?/.exec(output);
  if (!match) return undefined;
  const major = Number(match[1]);
  const version = match[2] === undefined ? `${match[1]}${match[3] ?? ''}` : `${match[1]}.${match[2]}`;
  return {version, major};
}

export async function probeClientTool(tool: ClientTool, pgBinDir: string | undefined): Promise<ClientToolInfo> {
  const command = clientToolCommand(tool, pgBinDir);
  const result = await execa(command, ['--version'], {reject: false, timeout: 15_000, stdin: 'ignore', env: minimalChildEnvironment(), extendEnv: false});
  const missing = (result as {code?: string}).code === 'ENOENT' || result.exitCode === 127 || (result.failed && result.exitCode === undefined && !result.signal);
  if (missing) {
    throw new SynapseError('E_TOOL_MISSING', {
      message: `unable to run ${tool} '${command}': not installed or not executable`,
      details: {tool, command},
    });
  }
  const parsed = parseClientToolVersion(result.stdout);
  if (result.exitCode !== 0 || !parsed) {
    throw new SynapseError('E_TOOL_MISSING', {
      message: `unable to run ${tool} '${command}': '${command} --version' printed no PostgreSQL version (exit ${result.exitCode ?? result.signal})`,
      details: {tool, command},
    });
  }
  return {tool, command, ...parsed};
}

/** pg_dump refuses servers newer than itself; say so before starting instead of halfway. */
export function assertDumpCanReadServer(pgDump: ClientToolInfo, serverMajor: number, serverVersion: string): void {
  if (pgDump.major < serverMajor) {
    throw new SynapseError('E_TOOL_VERSION', {
      message: `unable to back up with ${pgDump.tool} '${pgDump.command}': ${pgDump.tool} ${pgDump.version} is older than the server (${serverVersion})`,
      suggestion: `Install ${pgDump.tool} ${serverMajor} or newer (Debian/Ubuntu: apt-get install postgresql-client-${serverMajor}) and set PG_BIN_DIR to its directory, e.g. /usr/lib/postgresql/${serverMajor}/bin.`,
      details: {pgDumpVersion: pgDump.version, serverVersion},
    });
  }
}
