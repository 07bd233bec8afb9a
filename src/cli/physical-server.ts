import {execa} from 'execa';
import {existsSync, readFileSync} from 'node:fs';
import path from 'node:path';

import {portableSettings, serverCommand, type PortableSettings, type Settings} from '../core/config/index.js';
import {SynapseError} from '../core/errors/index.js';

/** What a restored server needs from this installation: the server's user, its binaries, its restore_command. */

/** A user's uid and gid from /etc/passwd. */
export function systemUser(name: string): {uid: number; gid: number; name: string} | undefined {
  const entry = readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.split(':')[0] === name);
  if (!entry) return undefined;
  const [, , uid, gid] = entry.split(':');
  return {uid: Number(uid), gid: Number(gid), name};
}

/**
 * Who a restored server runs as: as root, `--owner` or postgres (PostgreSQL refuses to run as
 * root, so root never runs it itself); otherwise this user, and --owner is refused.
 */
export function serverOwner(requested: string | undefined, action: string): {uid: number; gid: number; name: string} | undefined {
  const asRoot = process.getuid?.() === 0;
  const ownerName = requested ?? (asRoot ? 'postgres' : undefined);
  const owner = ownerName ? systemUser(ownerName) : undefined;
  if (ownerName && !owner) throw new SynapseError('E_USAGE', {message: `unable to ${action}: there is no user '${ownerName}' for the server to run as (PostgreSQL refuses to run as root)`, suggestion: 'Pass --owner with the user the server runs as.'});
  if (owner && !asRoot) throw new SynapseError('E_USAGE', {message: '--owner needs root: only root can give files to another user', suggestion: 'Run as the user the server runs as, without --owner, or as root.'});
  if (owner?.uid === 0) throw new SynapseError('E_USAGE', {message: `unable to ${action} as root: PostgreSQL refuses to run as root`, suggestion: 'Pass --owner with an unprivileged user, such as postgres.'});
  return owner;
}

/** The directory with the server binaries of a major version: PG_BIN_DIR where it has them, else Debian's place. */
export function serverBinDirectory(settings: Settings, major: number, program = 'postgres'): string {
  return [settings.pgBinDir, `/usr/lib/postgresql/${major}/bin`].filter((directory): directory is string => directory !== undefined).find((directory) => existsSync(path.join(directory, program))) ?? `/usr/lib/postgresql/${major}/bin`;
}

/** The restore_command the server runs: this installation's launcher (which brings its own Node) with the settings that hold no secret. */
export function walFetchCommand(settings: Settings, root: string): {restoreCommand: string; serverNeeds: readonly string[]; assignments: PortableSettings['assignments']} {
  const portable = portableSettings(settings, process.cwd());
  const launcher = path.join(root, 'bin', 'synapse-backup');
  return {restoreCommand: serverCommand(portable.assignments, [launcher, 'wal', 'fetch', '%f', '%p']), serverNeeds: portable.serverNeeds, assignments: portable.assignments};
}

/** Whether the server's user can run the launcher and read the key file; if not, recovery fails at its first WAL file. */
export async function serverUserCanRun(user: string, settings: Settings, root: string): Promise<{ok: boolean; message: string}> {
  const launcher = path.join(root, 'bin', 'synapse-backup');
  const keyFile = settings.env.BACKUP_ENCRYPTION_KEY_FILE?.trim() ? path.resolve(settings.env.BACKUP_ENCRYPTION_KEY_FILE.trim()) : undefined;
  const probe = await execa('runuser', ['-u', user, '--', 'sh', '-c', 'test -x "$1" && { [ -z "$2" ] || test -r "$2"; }', 'sh', launcher, keyFile ?? ''], {reject: false, stdin: 'ignore', timeout: 10_000});
  return {
    ok: probe.exitCode === 0,
    message: `user '${user}' cannot run ${launcher}${keyFile ? ` or read ${keyFile}` : ''}, so the server's restore_command will fail: install synapse-backup where '${user}' can run it (the README's Installing section) and give '${user}' the key file`,
  };
}
