import {execa} from 'execa';

/** A tmpfs of exactly `sizeBytes`: writes past it fail with ENOSPC, as on a full disk. Needs root. */
export async function mountTmpfs(directory: string, options: {sizeBytes: number; readOnly?: boolean}): Promise<void> {
  const mountOptions = [`size=${options.sizeBytes}`, 'mode=0700', ...(options.readOnly ? ['ro'] : [])].join(',');
  await execa('mount', ['-t', 'tmpfs', '-o', mountOptions, 'tmpfs', directory]);
}

export async function remountReadOnly(directory: string, readOnly: boolean): Promise<void> {
  await execa('mount', ['-o', `remount,${readOnly ? 'ro' : 'rw'}`, directory]);
}

export async function unmount(directory: string): Promise<void> {
  await execa('umount', [directory], {reject: false});
}
