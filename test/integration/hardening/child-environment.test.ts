import {expect} from 'chai';
import {chmod, mkdir, readFile, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {fakeBinDir} from '../../helpers/fake-tools.js';
import {createWorkspace, type Workspace} from '../../helpers/workspace.js';

const PASSWORD = 'database-password-Xy7-never-in-children';
const OTHER_SECRET = 'aws-secret-of-another-program-0123';

/** One environment per child process that ran, keyed by the tool and its first argument. */
function parseLog(text: string): Array<{tool: string; env: Record<string, string>}> {
  return text
    .split('\n=== ')
    .filter((section) => section.trim() !== '')
    .map((section) => {
      const [header, ...lines] = section.replace(/^=== /, '').split('\n');
      const env: Record<string, string> = {};
      for (const line of lines) {
        const separator = line.indexOf('=');
        if (separator > 0) env[line.slice(0, separator)] = line.slice(separator + 1);
      }
      return {tool: header!, env};
    });
}

describe('what child processes see of our environment', function () {
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  it('gives every child a minimal environment: no key, no URL, no other secret; PGPASSWORD only to pg_dump and psql', async function () {
    const log = path.join(workspace.cwd, 'children.log');
    const record = (tool: string, real: string) => `{ echo "=== ${tool} $1"; env; } >> ${log}\nexec ${real} "$@"`;
    const pgBin = await fakeBinDir(path.join(workspace.cwd, 'pgbin'), {pg_dump: record('pg_dump', '/usr/bin/pg_dump'), psql: record('psql', '/usr/bin/psql')});
    const pathBin = path.join(workspace.cwd, 'pathbin');
    await mkdir(pathBin);
    for (const tool of ['mkfifo', 'perl']) {
      await writeFile(path.join(pathBin, tool), `#!/bin/bash\n${record(tool, `/usr/bin/${tool}`)}\n`);
      await chmod(path.join(pathBin, tool), 0o755);
    }
    // The server trusts local connections, so the password is carried but never asked for.
    const url = workspace.databaseUrl.replace('postgresql://postgres@', `postgresql://postgres:${PASSWORD}@`);
    const env = {DATABASE_URL: url, PG_BIN_DIR: pgBin, PATH: `${pathBin}:${process.env.PATH}`, AWS_SECRET_ACCESS_KEY: OTHER_SECRET};
    const name = await workspace.backup(env);
    const restored = await workspace.run(['backup', 'restore', name, '--yes', '--json'], env);
    expect(restored.exitCode, restored.stdout).to.equal(0);

    const children = parseLog(await readFile(log, 'utf8'));
    const tools = new Set(children.map((child) => child.tool.split(' ')[0]));
    expect([...tools].sort()).to.deep.equal(['mkfifo', 'perl', 'pg_dump', 'psql']);
    for (const child of children) {
      const text = JSON.stringify(child.env);
      expect(text, child.tool).not.to.include(workspace.env.BACKUP_ENCRYPTION_KEY!);
      expect(text, child.tool).not.to.include(OTHER_SECRET);
      expect(Object.keys(child.env), child.tool).not.to.include.members(['DATABASE_URL', 'BACKUP_ENCRYPTION_KEY', 'AWS_SECRET_ACCESS_KEY', 'BACKUP_DIR']);
      const connects = /^(pg_dump|psql) (?!--version)/.test(child.tool);
      expect(child.env.PGPASSWORD, child.tool).to.equal(connects ? PASSWORD : undefined);
      if (!connects) expect(text, child.tool).not.to.include(PASSWORD);
    }
  });
});
