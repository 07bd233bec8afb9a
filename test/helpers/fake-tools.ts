import {chmod, mkdir, writeFile} from 'node:fs/promises';
import path from 'node:path';

/**
 * A PG_BIN_DIR whose tools are shell scripts, for failure injection. Tools not given are linked
 * to the real ones from PATH so the rest of the run is real.
 */
export async function fakeBinDir(directory: string, scripts: Partial<Record<'pg_dump' | 'psql', string>>): Promise<string> {
  await mkdir(directory, {recursive: true});
  for (const tool of ['pg_dump', 'psql'] as const) {
    const body = scripts[tool] ?? `exec ${tool} "$@"`;
    const file = path.join(directory, tool);
    await writeFile(file, `#!/bin/bash\n${body}\n`);
    await chmod(file, 0o755);
  }
  return directory;
}

/** Answers --version like the real tool, then runs `body` for a real invocation. */
export function versionAware(tool: 'pg_dump' | 'psql', body: string, version = '15.20'): string {
  return `if [ "$1" = "--version" ]; then echo "${tool} (PostgreSQL) ${version}"; exit 0; fi\n${body}`;
}
