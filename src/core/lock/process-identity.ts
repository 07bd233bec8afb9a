import {readFileSync} from 'node:fs';

/**
 * When a process started, in clock ticks since boot (field 22 of /proc/<pid>/stat), with the
 * boot's id: a PID alone is reused once its process is gone, but the same PID with the same start
 * time in the same boot is the same process. Undefined where there is no /proc (macOS).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses; the fields after its last ')' do not.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = fields[19];
    if (startTicks === undefined || !/^\d+$/.test(startTicks)) return undefined;
    return `${bootId() ?? 'unknown-boot'}/${startTicks}`;
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}
