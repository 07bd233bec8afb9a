import {execa} from 'execa';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(PROJECT_ROOT, 'bin', 'run.js');

export interface CliResult {
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON, when it is. */
  readonly json: any;
}

/** Only what the CLI needs from the outer environment, so a developer's own BACKUP_* settings never leak in. */
export function baseEnvironment(): Record<string, string> {
  const env: Record<string, string> = {PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8', SYNAPSE_BACKUP_PROGRESS_INTERVAL_MS: '0'};
  for (const name of ['TMPDIR', 'XDG_DATA_HOME']) if (process.env[name]) env[name] = process.env[name]!;
  return env;
}

export async function runCli(args: string[], options: {env?: Record<string, string | undefined>; cwd: string; timeoutMs?: number}): Promise<CliResult> {
  const env = {...baseEnvironment(), ...options.env};
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  const result = await execa(process.execPath, ['--', CLI, ...args], {
    cwd: options.cwd,
    env: env as Record<string, string>,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: options.timeoutMs ?? 120_000,
  });
  let json: unknown;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    json = undefined;
  }
  return {exitCode: result.exitCode, signal: result.signal, stdout: result.stdout, stderr: result.stderr, json};
}

/** The CLI as a child process still running, for tests that signal or kill it midway. */
export function spawnCli(args: string[], options: {env?: Record<string, string | undefined>; cwd: string}) {
  return execa(process.execPath, ['--', CLI, ...args], {
    cwd: options.cwd,
    env: {...baseEnvironment(), ...options.env} as Record<string, string>,
    extendEnv: false,
    reject: false,
  });
}

/** Resolves once `text` has appeared on the child's stderr. */
export function stderrReaches(child: ReturnType<typeof spawnCli>, text: string): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(text)) resolve();
    });
  });
}
