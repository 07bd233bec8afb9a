import {expect} from 'chai';
import {execa} from 'execa';
import {readFile} from 'node:fs/promises';
import path from 'node:path';

import {makeTempDir} from '../helpers/temp.js';

const PROJECT = path.resolve(import.meta.dirname, '../..');

describe('npm run bench (smoke run of the harness on a tiny database)', function () {
  this.timeout(300_000);
  let temp: Awaited<ReturnType<typeof makeTempDir>>;

  before(async function () {
    temp = await makeTempDir();
  });

  after(async function () {
    await temp.remove();
  });

  it('measures every case once, checks every restore, and writes the results as JSON', async function () {
    const out = path.join(temp.path, 'bench.json');
    const result = await execa(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--size', '5', '--runs', '1', '--rss-sizes', '2', '--fresh', '--skip-levels', '--wal-scale', '2', '--wal-seconds', '2', '--out', out], {
      cwd: PROJECT,
      reject: false,
      all: true,
    });
    expect(result.exitCode, result.all).to.equal(0);
    expect(result.stdout).to.match(/peak RSS at 2 MB/);
    expect(result.stdout).to.match(/gzip backup vs shell pipeline/);
    expect(result.stdout).to.match(/verify vs restore of the same backup \(gzip\)/);

    const document = JSON.parse(await readFile(out, 'utf8'));
    // The WAL suite: the server's own archiver drained through wal push (and pgBackRest, where installed).
    const walSamples = (document.wal.samples as Array<{tool: string; files: number; seconds: number}>).filter((sample) => sample.tool === 'synapse-backup wal push');
    expect(walSamples).to.have.length(1);
    expect(walSamples[0]!.files).to.be.greaterThan(0);
    expect(walSamples[0]!.seconds).to.be.greaterThan(0);
    const ids = (document.summaries as Array<{id: string}>).map((summary) => summary.id);
    expect(ids).to.include.members(['pg_dump-devnull', 'shell-gzip', 'pg_dump-custom', 'synapse-gzip', 'synapse-zstd', 'psql-file', 'shell-gunzip', 'synapse-restore-gzip', 'synapse-restore-zstd', 'shell-decode-gzip', 'synapse-verify-gzip', 'synapse-verify-zstd']);
    for (const summary of document.summaries) {
      expect(summary.wallSeconds.median, summary.id).to.be.greaterThan(0);
      expect(summary.peakRssBytes, summary.id).to.be.greaterThan(0);
    }
    expect(document.dataset.plainDumpBytes).to.be.greaterThan(1_000_000);
    expect(document.targets.length).to.be.greaterThanOrEqual(6);
    expect(document.rssBySize.map((entry: {databaseMegabytes: number}) => entry.databaseMegabytes)).to.deep.equal([5, 2]);
  });
});
