import {readFileSync, realpathSync, statSync, type Stats} from 'node:fs';
import {homedir} from 'node:os';
import path from 'node:path';

import {errnoCode} from '../../core/errors/index.js';

/**
 * Code is loaded only from places no other user can write. oclif loads the plugins a user
 * installed (and their `init` hooks) from the data directory before any command runs, with this
 * process's privileges and environment, the key included. So, the way ssh checks the modes of
 * what it trusts, every directory from / down to each installed plugin, and the files that name
 * them, must be owned by root or by the user running us, and writable by no one else. A
 * world-writable directory with the sticky bit (/tmp) is accepted on the way up when root owns
 * it, since no one else can rename or remove what we own in it.
 */
export interface PluginDirectoryVerdict {
  readonly dataDir: string;
  /** Why the user plugins were not loaded; undefined when they were trusted (or there are none). */
  readonly refusal: string | undefined;
}

/** The data directory as oclif computes it for our bin name (`SYNAPSE_BACKUP_DATA_DIR` first). */
export function pluginDataDir(env: NodeJS.ProcessEnv): string {
  const explicit = env.SYNAPSE_BACKUP_DATA_DIR;
  if (explicit) return path.resolve(explicit);
  return path.join(env.XDG_DATA_HOME || path.join(homedir(), '.local', 'share'), 'synapse-backup');
}

function modeProblem(where: string, stats: Stats, uid: number, ancestor: boolean): string | undefined {
  if (stats.uid !== 0 && stats.uid !== uid) {
    return `'${where}' is owned by user id ${stats.uid}, neither root nor the user running synapse-backup (${uid})`;
  }
  const writableByOthers = (stats.mode & 0o022) !== 0;
  const stickyRootDirectory = ancestor && stats.isDirectory() && (stats.mode & 0o1000) !== 0 && stats.uid === 0;
  if (writableByOthers && !stickyRootDirectory) {
    return `'${where}' is writable by ${(stats.mode & 0o002) === 0 ? 'its group' : 'every user'} (mode ${(stats.mode & 0o7777).toString(8).padStart(4, '0')})`;
  }
  return undefined;
}

/** The first problem on the way from / down to `target` (followed through links), or undefined. */
export function untrustedPath(target: string, uid: number): string | undefined {
  let real: string;
  try {
    real = realpathSync(target);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    return `unable to check '${target}': ${(error as Error).message}`;
  }
  const parts = real.split(path.sep).filter(Boolean);
  for (let depth = 0; depth <= parts.length; depth++) {
    const where = path.sep + parts.slice(0, depth).join(path.sep);
    let stats: Stats;
    try {
      stats = statSync(where);
    } catch (error) {
      return `unable to check '${where}': ${(error as Error).message}`;
    }
    const problem = modeProblem(where, stats, uid, depth < parts.length);
    if (problem) return problem;
  }
  return undefined;
}

/** The roots of the plugins oclif would load from `dataDir`: installed ones under node_modules, linked ones where they are. */
function userPluginRoots(dataDir: string): string[] {
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(path.join(dataDir, 'package.json'), 'utf8'));
  } catch {
    // No manifest, nothing loaded; an unreadable or broken one is oclif's to report, and loads nothing either.
    return [];
  }
  const plugins = (manifest as {oclif?: {plugins?: unknown}} | null)?.oclif?.plugins;
  if (!Array.isArray(plugins)) return [];
  return plugins.flatMap((plugin: {type?: unknown; name?: unknown; root?: unknown}) => {
    if (plugin?.type === 'link' && typeof plugin.root === 'string') return [path.resolve(dataDir, plugin.root)];
    if (plugin?.type === 'user' && typeof plugin.name === 'string') return [path.join(dataDir, 'node_modules', plugin.name)];
    return [];
  });
}

/** Judges the data directory of `env` for the user `uid`. Pure but for reading the file system. */
export function judgePluginDirectory(env: NodeJS.ProcessEnv, uid: number): PluginDirectoryVerdict {
  const dataDir = pluginDataDir(env);
  const places = [dataDir, path.join(dataDir, 'package.json'), path.join(dataDir, 'node_modules'), ...userPluginRoots(dataDir)];
  for (const place of places) {
    const problem = untrustedPath(place, uid);
    if (problem) {
      return {
        dataDir,
        refusal: `the plugins installed in '${dataDir}' were not loaded: ${problem}, so another user could have put code there that would run with this user's privileges and see its key. Make every directory on the way owned by root or by this user and writable by no one else (e.g. chown -R root:root ${dataDir} && chmod -R go-w ${dataDir}), or point SYNAPSE_BACKUP_DATA_DIR at a directory that is`,
      };
    }
  }
  return {dataDir, refusal: undefined};
}

let verdict: PluginDirectoryVerdict | undefined;

/** Judged once per process, before oclif loads anything (bin/run.js); commands and `check` read it here. */
export function pluginDirectoryVerdict(): PluginDirectoryVerdict {
  verdict ??= judgePluginDirectory(process.env, process.geteuid?.() ?? 0);
  return verdict;
}
