import type {Measurement} from './measure.js';

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export interface CaseSummary {
  readonly id: string;
  readonly label: string;
  readonly kind: 'backup' | 'restore' | 'verify';
  readonly ours: boolean;
  readonly runs: number;
  readonly wallSeconds: {readonly median: number; readonly min: number; readonly max: number};
  /** Plain dump bytes per second of median wall time. */
  readonly dumpMegabytesPerSecond: number;
  readonly cpuSeconds: number;
  readonly serverCpuSeconds: number;
  /** Highest peak over the runs. */
  readonly peakRssBytes: number;
  /** Median wall time over that of `pg_dump > /dev/null` (backups) or `psql -f` (restores). */
  readonly ratioToFloor: number;
  /** Median wall time over that of the shell pipeline doing the same job, where there is one. */
  readonly ratioToShell: number | undefined;
}

export interface CaseSamples {
  readonly id: string;
  readonly label: string;
  readonly kind: 'backup' | 'restore' | 'verify';
  readonly ours: boolean;
  readonly samples: readonly Measurement[];
}

const FLOOR_CASE = {backup: 'pg_dump-devnull', restore: 'psql-file', verify: 'shell-decode-gzip'} as const;
const SHELL_CASE: Readonly<Record<string, string>> = {
  'synapse-gzip': 'shell-gzip',
  'synapse-gzip-plain': 'shell-gzip',
  'synapse-zstd': 'shell-zstd',
  'synapse-zstd-plain': 'shell-zstd',
  'synapse-restore-gzip': 'shell-gunzip',
  'synapse-restore-zstd': 'shell-gunzip',
  'synapse-verify-gzip': 'shell-decode-gzip',
  'synapse-verify-zstd': 'shell-decode-zstd',
};

export function summarize(cases: readonly CaseSamples[], dumpBytes: number): CaseSummary[] {
  const medianWall = new Map(cases.map((entry) => [entry.id, median(entry.samples.map((sample) => sample.wallSeconds))]));
  return cases.map((entry) => {
    const walls = entry.samples.map((sample) => sample.wallSeconds);
    const wall = medianWall.get(entry.id)!;
    const shell = SHELL_CASE[entry.id];
    return {
      id: entry.id,
      label: entry.label,
      kind: entry.kind,
      ours: entry.ours,
      runs: entry.samples.length,
      wallSeconds: {median: wall, min: Math.min(...walls), max: Math.max(...walls)},
      dumpMegabytesPerSecond: dumpBytes / 1e6 / wall,
      cpuSeconds: median(entry.samples.map((sample) => sample.cpuSeconds)),
      serverCpuSeconds: median(entry.samples.map((sample) => sample.serverCpuSeconds)),
      peakRssBytes: Math.max(...entry.samples.map((sample) => sample.peakRssBytes)),
      ratioToFloor: wall / (medianWall.get(FLOOR_CASE[entry.kind]) ?? Number.NaN),
      ratioToShell: shell && medianWall.has(shell) ? wall / medianWall.get(shell)! : undefined,
    };
  });
}

export interface TargetResult {
  readonly target: string;
  readonly limit: string;
  readonly measured: string;
  /** undefined when a case it needs did not run. */
  readonly met: boolean | undefined;
}

/** Peak RSS of our processes at each database size, for the flatness target. */
export interface RssBySize {
  readonly databaseMegabytes: number;
  readonly peakRssBytes: number;
}

function ratio(value: number | undefined): string {
  return value === undefined || Number.isNaN(value) ? 'n/a' : `${value.toFixed(2)}x`;
}

/** The targets of the speed issue, as ratios within one run. */
export function evaluateTargets(summaries: readonly CaseSummary[], rssBySize: readonly RssBySize[]): TargetResult[] {
  const byId = new Map(summaries.map((summary) => [summary.id, summary]));
  const wall = (id: string): number | undefined => byId.get(id)?.wallSeconds.median;
  const results: TargetResult[] = [];

  const gzipToShell = byId.get('synapse-gzip')?.ratioToShell;
  results.push({target: 'gzip backup vs shell pipeline', limit: '<= 0.65x', measured: ratio(gzipToShell), met: gzipToShell === undefined ? undefined : gzipToShell <= 0.65});

  const zstd = wall('synapse-zstd');
  const ceiling = wall('pg_dump-devnull');
  const zstdRatio = zstd !== undefined && ceiling !== undefined ? zstd / ceiling : undefined;
  results.push({target: 'zstd backup vs pg_dump > /dev/null', limit: '<= 1.3x', measured: ratio(zstdRatio), met: zstdRatio === undefined ? undefined : zstdRatio <= 1.3});

  const restore = wall('synapse-restore-gzip');
  const floor = wall('psql-file');
  const restoreRatio = restore !== undefined && floor !== undefined ? restore / floor : undefined;
  results.push({target: 'restore vs psql -f', limit: '<= 1.1x', measured: ratio(restoreRatio), met: restoreRatio === undefined ? undefined : restoreRatio <= 1.1});

  // A verify decodes what a restore decodes, without psql: it must never be the slower of the two.
  for (const algorithm of ['gzip', 'zstd'] as const) {
    const verify = wall(`synapse-verify-${algorithm}`);
    const restoreOfSame = wall(`synapse-restore-${algorithm}`);
    const verifyRatio = verify !== undefined && restoreOfSame !== undefined ? verify / restoreOfSame : undefined;
    results.push({target: `verify vs restore of the same backup (${algorithm})`, limit: '<= 1.0x', measured: ratio(verifyRatio), met: verifyRatio === undefined ? undefined : verifyRatio <= 1});
  }

  for (const [encrypted, plain, label] of [
    ['synapse-gzip', 'synapse-gzip-plain', 'gzip'],
    ['synapse-zstd', 'synapse-zstd-plain', 'zstd'],
  ] as const) {
    const withKey = wall(encrypted);
    const withoutKey = wall(plain);
    const overhead = withKey !== undefined && withoutKey !== undefined ? withKey / withoutKey - 1 : undefined;
    results.push({
      target: `encryption overhead (${label})`,
      limit: '<= 5%',
      measured: overhead === undefined ? 'n/a' : `${(overhead * 100).toFixed(1)}%`,
      met: overhead === undefined ? undefined : overhead <= 0.05,
    });
  }

  // The same backup into a bucket on loopback as into a local directory: at least 0.9x the throughput.
  const toS3 = wall('synapse-gzip-s3');
  const toLocal = wall('synapse-gzip');
  const s3Throughput = toS3 !== undefined && toLocal !== undefined ? toLocal / toS3 : undefined;
  results.push({target: 'S3 backup throughput vs local directory (gzip, encrypted)', limit: '>= 0.9x', measured: ratio(s3Throughput), met: s3Throughput === undefined ? undefined : s3Throughput >= 0.9});
  const s3Peak = byId.get('synapse-gzip-s3')?.peakRssBytes;
  results.push({target: 'peak RSS of an S3 backup', limit: '<= 250 MB', measured: s3Peak === undefined ? 'n/a' : `${(s3Peak / 1e6).toFixed(0)} MB`, met: s3Peak === undefined ? undefined : s3Peak <= 250e6});

  const ours = summaries.filter((summary) => summary.ours);
  const peak = ours.length > 0 ? Math.max(...ours.map((summary) => summary.peakRssBytes)) : undefined;
  results.push({target: 'peak RSS of our processes', limit: '<= 200 MB', measured: peak === undefined ? 'n/a' : `${(peak / 1e6).toFixed(0)} MB`, met: peak === undefined ? undefined : peak <= 200e6});

  if (rssBySize.length >= 2) {
    const sorted = [...rssBySize].sort((a, b) => a.databaseMegabytes - b.databaseMegabytes);
    const smallest = sorted[0]!;
    const largest = sorted.at(-1)!;
    const growth = largest.peakRssBytes / smallest.peakRssBytes - 1;
    results.push({
      target: `RSS flat from ${smallest.databaseMegabytes} MB to ${largest.databaseMegabytes} MB database`,
      limit: '<= 20% growth',
      measured: `${(smallest.peakRssBytes / 1e6).toFixed(0)} -> ${(largest.peakRssBytes / 1e6).toFixed(0)} MB (${(growth * 100).toFixed(1)}%)`,
      met: growth <= 0.2,
    });
  }
  return results;
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

export function formatTable(summaries: readonly CaseSummary[]): string {
  const header = ['case', 'median s', 'min-max s', 'MB/s', 'vs floor', 'vs shell', 'CPU s', 'server CPU s', 'peak RSS'];
  const rows = summaries.map((summary) => [
    summary.label,
    summary.wallSeconds.median.toFixed(2),
    `${summary.wallSeconds.min.toFixed(2)}-${summary.wallSeconds.max.toFixed(2)}`,
    summary.dumpMegabytesPerSecond.toFixed(0),
    ratio(summary.ratioToFloor),
    ratio(summary.ratioToShell),
    summary.cpuSeconds.toFixed(1),
    summary.serverCpuSeconds.toFixed(1),
    `${(summary.peakRssBytes / 1e6).toFixed(0)} MB`,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string => cells.map((cell, column) => pad(cell, widths[column]!, column > 0)).join('  ');
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

export function formatTargets(results: readonly TargetResult[]): string {
  return results
    .map((result) => `${result.met === undefined ? 'n/a ' : result.met ? 'MET ' : 'MISS'}  ${result.target}: ${result.measured} (target ${result.limit})`)
    .join('\n');
}

/** Median wall time per case now against an earlier results file (same cases, same machine kind). */
export function formatComparison(current: readonly CaseSummary[], earlier: readonly CaseSummary[], earlierLabel: string): string {
  const before = new Map(earlier.map((summary) => [summary.id, summary]));
  const lines = [`case                                      then s    now s   change   (then: ${earlierLabel})`];
  for (const summary of current) {
    const old = before.get(summary.id);
    if (!old) continue;
    const change = summary.wallSeconds.median / old.wallSeconds.median - 1;
    lines.push(
      `${summary.label.padEnd(40)}  ${old.wallSeconds.median.toFixed(2).padStart(6)}  ${summary.wallSeconds.median.toFixed(2).padStart(6)}  ${`${change >= 0 ? '+' : ''}${(change * 100).toFixed(1)}%`.padStart(7)}`,
    );
  }
  return lines.join('\n');
}
