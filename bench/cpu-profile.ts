import {readFile, readdir} from 'node:fs/promises';
import path from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {readonly functionName: string; readonly url: string; readonly lineNumber: number};
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Self time by function, largest first. */
  readonly top: ReadonlyArray<{readonly function: string; readonly ms: number}>;
}

function describe(frame: ProfileNode['callFrame']): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  const file = frame.url.replace(/^file:\/\//, '').split('/').slice(-2).join('/');
  return `${name} ${file}:${frame.lineNumber + 1}`;
}

/** Self time per function of the main thread, from the .cpuprofile that `node --cpu-prof` wrote. */
export function summarizeProfile(profile: CpuProfile, limit = 15): ProfileSummary {
  const frames = new Map(profile.nodes.map((node) => [node.id, describe(node.callFrame)]));
  const selfMicros = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    total += delta;
    const name = frames.get(id) ?? '(unknown)';
    selfMicros.set(name, (selfMicros.get(name) ?? 0) + delta);
  });
  const top = [...selfMicros]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, micros]) => ({function: name, ms: Math.round(micros / 1000)}));
  return {totalMs: Math.round(total / 1000), top};
}

export async function readProfileIn(directory: string): Promise<CpuProfile> {
  const file = (await readdir(directory)).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${directory}`);
  return JSON.parse(await readFile(path.join(directory, file), 'utf8')) as CpuProfile;
}

export function formatProfile(summary: ProfileSummary): string {
  return [`main thread: ${summary.totalMs} ms sampled; self time by function:`, ...summary.top.map((entry) => `${String(entry.ms).padStart(7)} ms  ${entry.function}`)].join('\n');
}
