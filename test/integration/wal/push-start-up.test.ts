import {expect} from 'chai';
import {execa} from 'execa';
import {writeFile} from 'node:fs/promises';
import path from 'node:path';
import {pathToFileURL} from 'node:url';

import {PROJECT_ROOT} from '../../helpers/cli.js';
import {makeTempDir} from '../../helpers/temp.js';

/**
 * PostgreSQL's archiver starts `wal push` once per WAL file, so every module the command loads is
 * paid for once per 16 MiB of WAL. What only some runs need stays out of its start: the modules
 * a fresh Node resolves while loading the command are listed by a resolve hook and checked.
 */
describe('`wal push` loads only what archiving needs', function () {
  this.timeout(30_000);

  async function modulesLoadedBy(module: string): Promise<string[]> {
    const directory = (await makeTempDir('synapse-start-up-')).path;
    const hook = path.join(directory, 'hook.mjs');
    await writeFile(hook, `export async function resolve(specifier, context, next) { const resolved = await next(specifier, context); process._rawDebug('resolved ' + resolved.url); return resolved; }\n`);
    const register = path.join(directory, 'register.mjs');
    await writeFile(register, `import {register} from 'node:module'; register(${JSON.stringify(pathToFileURL(hook).href)});\n`);
    const {stderr} = await execa(process.execPath, ['--import', pathToFileURL(register).href, '--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(module).href)})`]);
    return stderr
      .split('\n')
      .filter((line) => line.startsWith('resolved '))
      .map((line) => line.slice('resolved '.length));
  }

  it('leaves notifications, the run journal, stored backups, the formatters and the services out', async function () {
    const loaded = await modulesLoadedBy(path.join(PROJECT_ROOT, 'dist', 'commands', 'wal', 'push.js'));
    const ours = loaded.filter((url) => url.includes('/dist/')).map((url) => url.slice(url.indexOf('/dist/') + '/dist/'.length));
    // The check sees the command's own graph: without these, it would pass on an empty list.
    expect(ours).to.include.members(['commands/wal/push.js', 'cli/base-command.js', 'core/wal/index.js', 'cli/runtime.js']);
    expect(ours.filter((module) => /^(core\/(notify|journal|trust|services|status)\/|cli\/format\/index\.js)/.test(module))).to.deep.equal([]);
    expect(loaded.filter((url) => /\/node_modules\/(listr2|execa|pg)\//.test(url))).to.deep.equal([]);
  });
});
