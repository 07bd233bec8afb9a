/** One line of /proc/self/mountinfo (see proc(5)). */
export interface MountEntry {
  readonly mountId: number;
  /** `major:minor` of the mounted file system, as stat() reports it in st_dev. */
  readonly device: string;
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal: `\040`. */
function unescape(field: string): string {
  return field.replaceAll(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (separator < 0 || fields.length < separator + 3) continue;
    entries.push({
      mountId: Number(fields[0]),
      device: fields[2]!,
      mountPoint: unescape(fields[4]!),
      fsType: fields[separator + 1]!,
      source: unescape(fields[separator + 2]!),
    });
  }
  return entries;
}

function isWithin(directory: string, mountPoint: string): boolean {
  return mountPoint === '/' || directory === mountPoint || directory.startsWith(`${mountPoint}/`);
}

/**
 * The mount that holds `directory` (an absolute path with symbolic links resolved): the one with
 * the longest mount point containing it, the last of those when several are stacked on one point
 * (the one on top is what the path reaches).
 */
export function mountOf(entries: readonly MountEntry[], directory: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const entry of entries) {
    if (!isWithin(directory, entry.mountPoint)) continue;
    if (!best || entry.mountPoint.length >= best.mountPoint.length) best = entry;
  }
  return best;
}

/** Network file systems, mounted by the kernel or through FUSE, that a backup may be written to. */
export const DEFAULT_NETWORK_FSTYPES: readonly string[] = [
  'nfs',
  'nfs4',
  'cifs',
  'smb3',
  'smbfs',
  'ceph',
  'glusterfs',
  'fuse.rclone',
  'fuse.sshfs',
  'fuse.glusterfs',
  'fuse.ceph-fuse',
];

/** `major:minor` of a stat() st_dev, as the Linux kernel encodes it. */
export function deviceName(dev: number): string {
  const major = Number((BigInt(dev) >> 8n) & 0xfffn);
  const minor = Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & 0xfff00n));
  return `${major}:${minor}`;
}

export type MountJudgement = {readonly accepted: true; readonly mount: MountEntry} | {readonly accepted: false; readonly reason: string};

/** Whether a backup may be written to `directory` (resolved), given the mounts and the accepted types; why not, when not. */
export function judgeMount(entries: readonly MountEntry[], directory: string, fsTypes: readonly string[]): MountJudgement {
  const mount = mountOf(entries, directory);
  if (mount && fsTypes.includes(mount.fsType)) return {accepted: true, mount};
  return {
    accepted: false,
    reason: `'${directory}' is not on a network mount: it is on ${mount ? `${mount.fsType} ${mount.source} on ${mount.mountPoint}` : 'no mount at all'}, and BACKUP_STORAGE=mount writes only to a mounted ${fsTypes.join(', ')} file system. Mount the share first (or check BACKUP_DIR); set BACKUP_MOUNT_FSTYPES to accept other types, or use BACKUP_STORAGE=local for a local directory`,
  };
}
