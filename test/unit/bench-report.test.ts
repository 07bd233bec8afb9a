import {expect} from 'chai';

import {childCpuSeconds, type Measurement} from '../../bench/measure.js';
import {evaluateTargets, formatComparison, formatTable, median, summarize, type CaseSamples} from '../../bench/report.js';

function samples(id: string, kind: 'backup' | 'restore' | 'verify', walls: number[], ours = id.startsWith('synapse'), rss = 100e6): CaseSamples {
  const measurements: Measurement[] = walls.map((wallSeconds) => ({wallSeconds, cpuSeconds: 1, serverCpuSeconds: 2, peakRssBytes: rss}));
  return {id, label: id, kind, ours, samples: measurements};
}

describe('bench report', function () {
  const medians: Array<[number[], number]> = [
    [[3], 3],
    [[5, 1, 3], 3],
    [[4, 1, 3, 2], 2.5],
  ];
  for (const [values, expected] of medians) {
    it(`median of ${JSON.stringify(values)} is ${expected}`, function () {
      expect(median(values)).to.equal(expected);
    });
  }

  it('reads the children CPU time from bash `times`', function () {
    expect(childCpuSeconds('0m0.010s 0m0.002s\n1m2.500s 0m0.250s\n')).to.equal(62.75);
    expect(() => childCpuSeconds('garbage')).to.throw(/unreadable/);
  });

  const cases = [
    samples('pg_dump-devnull', 'backup', [2, 3, 4]),
    samples('shell-gzip', 'backup', [10, 12, 11]),
    samples('synapse-gzip', 'backup', [7, 6, 8], true, 150e6),
    samples('synapse-gzip-plain', 'backup', [6.5, 7, 7.5]),
    samples('synapse-zstd', 'backup', [4, 4, 4]),
    samples('synapse-zstd-plain', 'backup', [3.9, 3.9, 3.9]),
    samples('psql-file', 'restore', [10, 10, 10]),
    samples('synapse-restore-gzip', 'restore', [12, 12, 12], true, 190e6),
    samples('synapse-restore-zstd', 'restore', [9, 9, 9]),
    samples('shell-decode-gzip', 'verify', [3, 3, 3]),
    samples('synapse-verify-gzip', 'verify', [4, 4, 4]),
    samples('synapse-verify-zstd', 'verify', [10, 10, 10]),
  ];

  it('computes medians, throughput and ratios to the floor and to the shell pipeline', function () {
    const summaries = summarize(cases, 684e6);
    const gzip = summaries.find((summary) => summary.id === 'synapse-gzip')!;
    expect(gzip.wallSeconds).to.deep.equal({median: 7, min: 6, max: 8});
    expect(gzip.ratioToFloor).to.equal(7 / 3);
    expect(gzip.ratioToShell).to.equal(7 / 11);
    expect(gzip.dumpMegabytesPerSecond).to.be.closeTo(684 / 7, 1e-9);
    const restore = summaries.find((summary) => summary.id === 'synapse-restore-gzip')!;
    expect(restore.ratioToFloor).to.equal(1.2);
    expect(summaries.find((summary) => summary.id === 'pg_dump-devnull')!.ratioToShell).to.equal(undefined);
    expect(formatTable(summaries).split('\n')).to.have.length(cases.length + 2);
  });

  it('judges each target from the ratios of one run', function () {
    const results = evaluateTargets(summarize(cases, 684e6), [
      {databaseMegabytes: 100, peakRssBytes: 150e6},
      {databaseMegabytes: 1000, peakRssBytes: 190e6},
    ]);
    const verdict = Object.fromEntries(results.map((result) => [result.target, result.met]));
    expect(verdict).to.deep.equal({
      'gzip backup vs shell pipeline': true, // 7 / 11 = 0.636
      'zstd backup vs pg_dump > /dev/null': false, // 4 / 3 = 1.33
      'restore vs psql -f': false, // 1.2
      'verify vs restore of the same backup (gzip)': true, // 4 / 12
      'verify vs restore of the same backup (zstd)': false, // 10 / 9
      'encryption overhead (gzip)': true, // 7 / 7 - 1 = 0
      'encryption overhead (zstd)': true, // 4 / 3.9 - 1 = 2.6%
      // No S3 case in this run: open, not met or missed.
      'S3 backup throughput vs local directory (gzip, encrypted)': undefined,
      'peak RSS of an S3 backup': undefined,
      'peak RSS of our processes': true, // 190 MB
      'RSS flat from 100 MB to 1000 MB database': false, // +26.7%
    });
  });

  it('judges the S3 backup against the local one of the same run, and its memory', function () {
    const results = evaluateTargets(summarize([samples('synapse-gzip', 'backup', [9]), samples('synapse-gzip-s3', 'backup', [10])], 684e6), []);
    const s3 = results.find((result) => result.target === 'S3 backup throughput vs local directory (gzip, encrypted)')!;
    expect(s3).to.include({measured: '0.90x', met: true});
    const slow = evaluateTargets(summarize([samples('synapse-gzip', 'backup', [8]), samples('synapse-gzip-s3', 'backup', [10])], 684e6), []);
    expect(slow.find((result) => result.target === s3.target)).to.include({measured: '0.80x', met: false});
  });

  it('leaves a target open when a case it needs did not run', function () {
    const results = evaluateTargets(summarize([samples('synapse-gzip', 'backup', [5])], 1e6), []);
    expect(results.find((result) => result.target === 'gzip backup vs shell pipeline')!.met).to.equal(undefined);
  });

  it('compares medians with an earlier run, case by case', function () {
    const now = summarize([samples('synapse-zstd', 'backup', [4]), samples('synapse-gzip', 'backup', [9])], 1e6);
    const then = summarize([samples('synapse-zstd', 'backup', [5])], 1e6);
    const lines = formatComparison(now, then, 'abc at yesterday').split('\n');
    expect(lines).to.have.length(2);
    expect(lines[1]).to.match(/^synapse-zstd\s+5\.00\s+4\.00\s+-20\.0%$/);
  });
});
