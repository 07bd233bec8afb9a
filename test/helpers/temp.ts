import {mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';

/**
 * Every directory made here in this run, removed when the run ends (see removeTempDirs). On
 * globalThis: mocha loads its root hooks as CommonJS and the suites as ES modules, two copies of
 * this module that must share one list.
 */
const made: Set<string> = ((globalThis as {synapseTestDirectories?: Set<string>}).synapseTestDirectories ??= new Set<string>());

export async function makeTempDir(prefix = 'synapse-'): Promise<{path: string; remove: () => Promise<void>}> {
  const directory = await mkdtemp(path.join(tmpdir(), prefix));
  made.add(directory);
  return {
    path: directory,
    remove: async () => {
      await rm(directory, {recursive: true, force: true});
      made.delete(directory);
    },
  };
}

/**
 * Removes the directories the run made and left (a suite's WAL copies, scratch restores: hundreds
 * of megabytes a run). One with a mount still inside stays: removing a mount point fails (EBUSY)
 * before anything in the mount is touched.
 */
export async function removeTempDirs(only?: readonly string[]): Promise<{removed: number; kept: string[]}> {
  const kept: string[] = [];
  let removed = 0;
  for (const directory of only ?? [...made]) {
    await rm(directory, {recursive: true, force: true}).then(
      () => removed++,
      () => kept.push(directory),
    );
    made.delete(directory);
  }
  return {removed, kept};
}
