import {mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';

export async function makeTempDir(prefix = 'synapse-'): Promise<{path: string; remove: () => Promise<void>}> {
  const directory = await mkdtemp(path.join(tmpdir(), prefix));
  return {path: directory, remove: () => rm(directory, {recursive: true, force: true})};
}
