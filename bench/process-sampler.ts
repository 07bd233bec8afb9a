import {readFileSync, readdirSync} from 'node:fs';

/** Linux reports CPU time in clock ticks of 1/100 s (USER_HZ) on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;
const PAGE_SIZE = 4096;

interface ProcessReading {
  readonly parent: number;
  /** user + system time in seconds, since the process started. */
  readonly cpuSeconds: number;
  readonly rssBytes: number;
}

function readProcess(pid: number): ProcessReading | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name is in parentheses and may itself hold spaces or parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const statm = readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return {
      parent: Number(fields[1]),
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
      rssBytes: Number(statm[1]) * PAGE_SIZE,
    };
  } catch {
    return undefined; // it exited between the listing and the read
  }
}

function listPids(): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
}

export interface TreeUsage {
  /** Highest sum of resident memory over the tree's processes at one sample. */
  readonly peakRssBytes: number;
  /** CPU seconds the database server's processes used while sampled. */
  readonly serverCpuSeconds: number;
}

/**
 * Samples the process tree under `root` (our CLI and its pg_dump/psql, or a shell pipeline) for
 * memory, and the database server's processes for CPU. The peak RSS is of the sum over the tree,
 * because that is what the machine must hold at once. Each process's parent is read once, when it
 * first appears, so a sample costs a directory listing plus a read per process of interest.
 */
export class ProcessSampler {
  readonly #root: number;
  readonly #serverRoot: number | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #parents = new Map<number, number>();
  readonly #serverFirstCpu = new Map<number, number>();
  readonly #serverLastCpu = new Map<number, number>();
  #peakRss = 0;
  #started = false;

  constructor(root: number, serverRoot: number | undefined, intervalMs = 50) {
    this.#root = root;
    this.#serverRoot = serverRoot;
    this.sample();
    this.#started = true;
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  #isUnder(pid: number, ancestor: number): boolean {
    for (let current = pid, hops = 0; current > 1 && hops < 64; hops++) {
      if (current === ancestor) return true;
      const parent = this.#parents.get(current);
      if (parent === undefined) return false;
      current = parent;
    }
    return false;
  }

  sample(): void {
    const alive = listPids();
    for (const pid of alive) {
      if (this.#parents.has(pid)) continue;
      const reading = readProcess(pid);
      if (reading) this.#parents.set(pid, reading.parent);
    }
    let rss = 0;
    for (const pid of alive) {
      if (this.#isUnder(pid, this.#root)) rss += readProcess(pid)?.rssBytes ?? 0;
      else if (this.#serverRoot !== undefined && this.#isUnder(pid, this.#serverRoot)) {
        const cpu = readProcess(pid)?.cpuSeconds;
        if (cpu === undefined) continue;
        // A server process that was there before sampling began only counts what it used since.
        if (!this.#serverFirstCpu.has(pid)) this.#serverFirstCpu.set(pid, this.#started ? 0 : cpu);
        this.#serverLastCpu.set(pid, cpu);
      }
    }
    this.#peakRss = Math.max(this.#peakRss, rss);
  }

  stop(): TreeUsage {
    clearInterval(this.#timer);
    let serverCpu = 0;
    for (const [pid, last] of this.#serverLastCpu) serverCpu += last - this.#serverFirstCpu.get(pid)!;
    return {peakRssBytes: this.#peakRss, serverCpuSeconds: serverCpu};
  }
}
