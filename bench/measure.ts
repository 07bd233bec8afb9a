import {spawn} from 'node:child_process';

import {ProcessSampler} from './process-sampler.js';

export interface Measurement {
  readonly wallSeconds: number;
  /** CPU seconds of the measured command and everything it started (bash `times`, exact). */
  readonly cpuSeconds: number;
  /** CPU seconds the database server spent meanwhile (sampled). */
  readonly serverCpuSeconds: number;
  readonly peakRssBytes: number;
}

export interface CommandSpec {
  /** A bash script; runs with `set -o pipefail`, so a failing pg_dump fails a pipeline. */
  readonly script: string;
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
}

function secondsOf(text: string): number {
  const match = /^(\d+)m([\d.]+)s$/.exec(text.trim());
  if (!match) throw new Error(`unreadable bash times output '${text}'`);
  return Number(match[1]) * 60 + Number(match[2]);
}

/** Parses bash's `times`: the second line is the children's user and system time. */
export function childCpuSeconds(timesOutput: string): number {
  const lines = timesOutput.trim().split('\n');
  const [user, system] = (lines[1] ?? '').trim().split(/\s+/);
  return secondsOf(user ?? '') + secondsOf(system ?? '');
}

/** Runs one command, timing it from spawn to exit and sampling its process tree; rejects if it fails. */
export async function measure(spec: CommandSpec, serverPid: number | undefined): Promise<Measurement> {
  const wrapped = `set -o pipefail\n${spec.script}\nstatus=$?\ntimes >&3\nexit $status`;
  const started = process.hrtime.bigint();
  const child = spawn('bash', ['-c', wrapped], {cwd: spec.cwd, env: {...spec.env}, stdio: ['ignore', 'ignore', 'pipe', 'pipe']});
  const sampler = new ProcessSampler(child.pid!, serverPid);
  let stderr = '';
  let times = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  (child.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8').on('data', (chunk: string) => {
    times += chunk;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const usage = sampler.stop();
  if (code !== 0) throw new Error(`benchmark command failed with status ${code}:\n${spec.script}\n${stderr}`);
  return {wallSeconds, cpuSeconds: childCpuSeconds(times), serverCpuSeconds: usage.serverCpuSeconds, peakRssBytes: usage.peakRssBytes};
}
