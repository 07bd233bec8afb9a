import {expect} from 'chai';
import {spawn} from 'node:child_process';
import type {Readable} from 'node:stream';
import {setTimeout as sleep} from 'node:timers/promises';

import {BlockPool} from '../../src/core/pipeline/block-pool.js';
import {openBlockPipe} from '../../src/core/process/block-pipe.js';

/** A child that writes `bytes` bytes of a known pattern in uneven writes, as pg_dump would. */
function writer(fd: number, bytes: number) {
  const script = `
    const total = ${bytes}; let written = 0; let i = 0;
    const next = () => {
      while (written < total) {
        const size = Math.min(total - written, 1000 + (i++ * 7919) % 60000);
        const chunk = Buffer.alloc(size);
        for (let j = 0; j < size; j++) chunk[j] = (written + j) % 251;
        written += size;
        if (!process.stdout.write(chunk)) return process.stdout.once('drain', next);
      }
    };
    next();`;
  return spawn(process.execPath, ['-e', script], {stdio: ['ignore', fd, 'inherit']});
}

function expectedPattern(bytes: number): Buffer {
  const data = Buffer.alloc(bytes);
  for (let index = 0; index < bytes; index++) data[index] = index % 251;
  return data;
}

describe('openBlockPipe', function () {
  it('delivers everything the child wrote, in full pool blocks, and gets its blocks back', async function () {
    const pool = new BlockPool(256 * 1024);
    const pipe = (await openBlockPipe(pool))!;
    expect(pipe).to.not.equal(undefined);
    // perl is on every Debian, so the pipe is grown and read paced: this checks the paced path.
    expect(await pipe.grown).to.equal(true);
    const child = writer(pipe.writeFd, 1_000_003);
    pipe.closeWriteEnd();
    const sizes: number[] = [];
    const copies: Buffer[] = [];
    for await (const block of pipe.output as AsyncIterable<Buffer>) {
      sizes.push(block.length);
      copies.push(Buffer.from(block));
      pool.release(block);
    }
    await new Promise((resolve) => child.once('exit', resolve));
    expect(sizes).to.deep.equal([262_144, 262_144, 262_144, 213_571]);
    expect(Buffer.concat(copies).equals(expectedPattern(1_000_003))).to.equal(true);
    expect(pool.lentCount).to.equal(0);
  });

  it('stops the writer while nobody reads, instead of filling memory', async function () {
    const pool = new BlockPool(64 * 1024);
    const pipe = (await openBlockPipe(pool))!;
    const child = writer(pipe.writeFd, 50_000_000);
    pipe.closeWriteEnd();
    await sleep(300);
    // One block filling, one buffered: the pipe and the child wait for a reader.
    expect(pool.lentCount).to.be.at.most(3);
    expect(child.exitCode).to.equal(null);
    child.kill();
    (pipe.output as Readable).destroy();
  });

  it('ends at once, empty, when the child writes nothing', async function () {
    const pool = new BlockPool(1024);
    const pipe = (await openBlockPipe(pool))!;
    const child = writer(pipe.writeFd, 0);
    pipe.closeWriteEnd();
    const blocks: Buffer[] = [];
    for await (const block of pipe.output as AsyncIterable<Buffer>) blocks.push(block);
    await new Promise((resolve) => child.once('exit', resolve));
    expect(blocks).to.deep.equal([]);
    expect(pool.lentCount).to.equal(0);
  });

  it('falls back (returns undefined) where mkfifo cannot be run', async function () {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(await openBlockPipe(new BlockPool(1024))).to.equal(undefined);
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('BlockPool', function () {
  it('lends blocks out, takes back only its own, and never the same one twice', function () {
    const pool = new BlockPool(16, 4);
    const first = pool.acquire();
    const second = pool.acquire();
    expect(first.buffer).to.not.equal(second.buffer);
    expect(pool.lentCount).to.equal(2);
    pool.release(first.subarray(3, 9));
    pool.release(first);
    pool.release(Buffer.alloc(16));
    expect(pool.lentCount).to.equal(1);
    const third = pool.acquire();
    expect(third.buffer).to.equal(first.buffer);
    expect(third.length).to.equal(16);
    const fourth = pool.acquire();
    expect(fourth.buffer).to.not.equal(first.buffer);
  });
});
