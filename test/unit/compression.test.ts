import {expect} from 'chai';
import {execFileSync} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {Readable, Writable} from 'node:stream';
import {pipeline} from 'node:stream/promises';
import {setTimeout as sleep} from 'node:timers/promises';
import zlib from 'node:zlib';

import {COMPRESSION_FORMATS, compressedMagic, createBlockCompressor, createCompressStream, createDecompressStream} from '../../src/core/pipeline/compression.js';
import {ParallelBlockCompressor} from '../../src/core/pipeline/parallel-block-compressor.js';
import {ReusableBlockCodec} from '../../src/core/pipeline/reusable-block-codec.js';
import {ZstdFrameScanner} from '../../src/core/pipeline/zstd-frames.js';
import type {CompressionAlgorithm} from '../../src/core/naming/index.js';

/** Text that compresses like a dump does: repetitive structure, varying values. */
function dumpLikeText(bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let row = 0; size < bytes; row++) {
    const line = `${row}\t${row % 97}\t${(row * 7919) % 100003}\tcustomer ${row % 1013} ordered ${randomBytes(4).toString('hex')}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

function chunksOf(data: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) chunks.push(data.subarray(offset, offset + size));
  return chunks;
}

async function collect(source: Readable | Buffer[], ...stages: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({write: (chunk: Buffer, _encoding, callback) => (out.push(chunk), callback())});
  await pipeline([Array.isArray(source) ? Readable.from(source) : source, ...stages, sink]);
  return Buffer.concat(out);
}

describe('compression', function () {
  const input = dumpLikeText(5 * 1024 * 1024 + 12345);

  for (const algorithm of ['gzip', 'zstd'] as CompressionAlgorithm[]) {
    describe(algorithm, function () {
      it('round-trips through our decompressor, in any chunking', async function () {
        const compressed = await collect(chunksOf(input, 65536), createCompressStream({algorithm, level: 3}));
        expect(compressed.subarray(0, compressedMagic(algorithm).length)).to.deep.equal(compressedMagic(algorithm));
        expect(compressed.length).to.be.lessThan(input.length / 2);
        for (const size of [1000, 65536, compressed.length]) {
          expect((await collect(chunksOf(compressed, size), createDecompressStream(algorithm))).equals(input), `chunks of ${size}`).to.equal(true);
        }
      });

      it('writes a file the stock tool reads whole (several members or frames)', async function () {
        const compressed = await collect(chunksOf(input, 65536), createCompressStream({algorithm, level: 6}));
        const tool = algorithm === 'gzip' ? ['gzip', ['-d', '-c']] : ['zstd', ['-d', '-c', '-q']];
        const decoded = execFileSync(tool[0] as string, tool[1] as string[], {input: compressed, maxBuffer: 64 * 1024 * 1024});
        expect(decoded.equals(input)).to.equal(true);
      });

      it('delivers every byte to a reader slower than the decoder, the last frame included', async function () {
        const compressed = await collect(chunksOf(input, 65536), createCompressStream({algorithm, level: 3}));
        // psql reads more slowly than the decoder writes, so the decoder is often paused when the input ends.
        for (let attempt = 0; attempt < 5; attempt++) {
          const out: Buffer[] = [];
          const slowReader = new Writable({
            highWaterMark: 16 * 1024,
            write: (chunk: Buffer, _encoding, callback) => {
              out.push(chunk);
              setTimeout(callback, 1);
            },
          });
          await pipeline([Readable.from(chunksOf(compressed, 256 * 1024)), createDecompressStream(algorithm), slowReader]);
          const decoded = Buffer.concat(out);
          expect(decoded.length, `attempt ${attempt}`).to.equal(input.length);
          expect(decoded.equals(input), `attempt ${attempt}`).to.equal(true);
        }
      });

      it('turns an empty input into a valid empty file', async function () {
        const compressed = await collect([], createCompressStream({algorithm, level: 6}));
        expect(compressed.length).to.be.greaterThan(0);
        expect((await collect([compressed], createDecompressStream(algorithm))).length).to.equal(0);
      });

      it('fails on a file cut short, at any point', async function () {
        const compressed = await collect(chunksOf(input, 65536), createCompressStream({algorithm, level: 3}));
        for (const keep of [1, 3, 10, Math.floor(compressed.length / 2), compressed.length - 1]) {
          let failure: unknown;
          await collect([compressed.subarray(0, keep)], createDecompressStream(algorithm)).catch((error: unknown) => (failure = error));
          expect(failure, `cut to ${keep} bytes`).to.be.instanceOf(Error);
        }
      });

      it('rejects garbage', async function () {
        let failure: unknown;
        await collect([Buffer.from('this is not compressed at all, not even a little')], createDecompressStream(algorithm)).catch((error: unknown) => (failure = error));
        expect(failure).to.be.instanceOf(Error);
      });
    });
  }

  it('streams that share a compressor leave it open for the next one and reuse its contexts', async function () {
    // wal push compresses dozens of files in a run: fresh contexts per file made V8 collect garbage after every file or two.
    const shared = createBlockCompressor({algorithm: 'zstd', level: 3});
    const inputs = [dumpLikeText(3 * 1024 * 1024 + 17), dumpLikeText(2 * 1024 * 1024), Buffer.alloc(0)];
    try {
      for (const input of inputs) {
        const compressed = await collect(chunksOf(input, 64 * 1024), createCompressStream({algorithm: 'zstd', level: 3}, {compressor: shared, threads: 2}));
        expect(await collect([compressed], createDecompressStream('zstd'))).to.deep.equal(input);
      }
      // One engine per block in flight (2 threads + 1 waiting), not per stream.
      expect((shared as ReusableBlockCodec).engines).to.be.at.most(3);
    } finally {
      shared.close();
    }
  });

  it('zstd decoding reads frames written by the zstd command line, skippable frames included', async function () {
    const fromCli = execFileSync('zstd', ['-3', '-c', '-q'], {input, maxBuffer: 64 * 1024 * 1024});
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.from([5, 0, 0, 0]), Buffer.from('hello')]);
    const joined = Buffer.concat([fromCli, skippable, zlib.zstdCompressSync(Buffer.from('tail'))]);
    const decoded = await collect(chunksOf(joined, 4096), createDecompressStream('zstd'));
    expect(decoded.equals(Buffer.concat([input, Buffer.from('tail')]))).to.equal(true);
  });

  it('gives each format a default level inside its range', function () {
    for (const format of Object.values(COMPRESSION_FORMATS)) {
      expect(format.levels.default).to.be.within(format.levels.min, format.levels.max);
    }
  });
});

describe('ZstdFrameScanner', function () {
  const frames = [Buffer.from('a'.repeat(100_000)), randomBytes(3000), Buffer.alloc(0), dumpLikeText(200_000)].map((data) =>
    zlib.zstdCompressSync(data, {params: {[zlib.constants.ZSTD_c_checksumFlag]: 1}}),
  );
  const stream = Buffer.concat(frames);

  for (const chunkSize of [1, 2, 3, 5, 17, 4096, stream.length]) {
    it(`finds every frame end in chunks of ${chunkSize} bytes`, function () {
      const scanner = new ZstdFrameScanner();
      const ends: number[] = [];
      let position = 0;
      for (const chunk of chunksOf(stream, chunkSize)) {
        for (const piece of scanner.scan(chunk)) {
          position += piece.bytes.length;
          if (piece.endsFrame) ends.push(position);
        }
      }
      const expected = frames.map((_frame, index) => frames.slice(0, index + 1).reduce((sum, frame) => sum + frame.length, 0));
      expect(ends).to.deep.equal(expected);
      expect(scanner.atFrameBoundary).to.equal(true);
    });
  }

  it('knows when the stream stops inside a frame', function () {
    const scanner = new ZstdFrameScanner();
    scanner.scan(frames[0]!.subarray(0, 7));
    expect(scanner.atFrameBoundary).to.equal(false);
  });
});

describe('ParallelBlockCompressor', function () {
  it('keeps block order when later blocks finish first, and never holds more than maxInFlight blocks', async function () {
    let running = 0;
    let mostRunning = 0;
    const compressor = new ParallelBlockCompressor({
      blockSize: 10,
      maxInFlight: 3,
      async compressBlock(block) {
        running++;
        mostRunning = Math.max(mostRunning, running);
        // The first block of every three is the slowest.
        await sleep(block[0]! % 3 === 0 ? 30 : 1);
        running--;
        return Buffer.from(`[${block.toString()}]`);
      },
    });
    const blocks = Array.from({length: 12}, (_unused, index) => Buffer.from(String.fromCharCode(48 + index).repeat(10)));
    const output = await collect(blocks, compressor);
    expect(output.toString()).to.equal(blocks.map((block) => `[${block.toString()}]`).join(''));
    expect(mostRunning).to.equal(3);
  });

  it('cuts blocks at chunk boundaries once blockSize is reached', async function () {
    const sizes: number[] = [];
    const compressor = new ParallelBlockCompressor({blockSize: 100, maxInFlight: 2, compressBlock: async (block) => (sizes.push(block.length), block)});
    await collect(chunksOf(Buffer.alloc(1000), 40), compressor);
    expect(sizes).to.deep.equal([120, 120, 120, 120, 120, 120, 120, 120, 40]);
  });

  it('fails the stream when a block fails, without writing the blocks after it', async function () {
    const compressor = new ParallelBlockCompressor({
      blockSize: 1,
      maxInFlight: 2,
      compressBlock: async (block) => {
        if (block.toString() === 'c') throw new Error('codec broke on c');
        return block;
      },
    });
    const written: string[] = [];
    let failure: unknown;
    await pipeline(Readable.from([Buffer.from('a'), Buffer.from('b'), Buffer.from('c'), Buffer.from('d')]), compressor, new Writable({write: (chunk: Buffer, _encoding, callback) => (written.push(chunk.toString()), callback())})).catch(
      (error: unknown) => (failure = error),
    );
    expect((failure as Error).message).to.equal('codec broke on c');
    expect(written).to.deep.equal(['a', 'b']);
  });

  it('stops reading when its reader stops, so memory stays bounded', async function () {
    let compressed = 0;
    const compressor = new ParallelBlockCompressor({blockSize: 1024, maxInFlight: 2, compressBlock: async (block) => (compressed++, block)});
    const source = Readable.from(chunksOf(Buffer.alloc(1024 * 1024), 1024));
    source.pipe(compressor);
    // Nobody reads the compressor's output.
    await sleep(100);
    expect(compressed).to.be.lessThan(64);
    source.destroy();
    compressor.destroy();
  });
});

describe('ReusableBlockCodec', function () {
  const blocks = chunksOf(dumpLikeText(12 * 100_000), 100_000);
  const codecs = {
    gzip: () => COMPRESSION_FORMATS.gzip.blockCodec(6),
    zstd: () => COMPRESSION_FORMATS.zstd.blockCodec(3),
  };
  const decodeAlone = {gzip: (member: Buffer) => zlib.gunzipSync(member), zstd: (frame: Buffer) => zlib.zstdDecompressSync(frame)};

  for (const algorithm of ['gzip', 'zstd'] as const) {
    it(`${algorithm}: each block becomes a member or frame that decodes on its own, with one engine per block in flight`, async function () {
      const codec = new ReusableBlockCodec(codecOptions(algorithm));
      const compressed: Buffer[] = [];
      // Three at a time, as the parallel compressor does on two cores.
      for (let start = 0; start < blocks.length; start += 3) compressed.push(...(await Promise.all(blocks.slice(start, start + 3).map((block) => codec.compress(block)))));
      expect(codec.engines).to.equal(3);
      compressed.forEach((piece, index) => expect(decodeAlone[algorithm](piece).equals(blocks[index]!), `block ${index}`).to.equal(true));
      codec.close();
      let failure: unknown;
      await codec.compress(blocks[0]!).catch((error: unknown) => (failure = error));
      expect(failure).to.be.instanceOf(Error);
    });

    it(`${algorithm}: the format's codec writes what the stock tool reads`, async function () {
      const codec = codecs[algorithm]();
      const joined = Buffer.concat(await Promise.all(blocks.map((block) => codec.compress(block))));
      codec.close();
      const tool = algorithm === 'gzip' ? ['gzip', ['-d', '-c']] : ['zstd', ['-d', '-c', '-q']];
      expect(execFileSync(tool[0] as string, tool[1] as string[], {input: joined, maxBuffer: 64 * 1024 * 1024}).equals(Buffer.concat(blocks))).to.equal(true);
    });
  }

  function codecOptions(algorithm: 'gzip' | 'zstd'): ConstructorParameters<typeof ReusableBlockCodec>[0] {
    return algorithm === 'gzip'
      ? {create: () => zlib.createGzip({level: 6}), endFlag: zlib.constants.Z_FINISH, prepareNext: (engine) => (engine as unknown as zlib.ZlibReset).reset()}
      : {create: () => zlib.createZstdCompress(), endFlag: zlib.constants.ZSTD_e_end};
  }
});

describe('ZstdMultiFrameDecompressor', function () {
  it('fails on a damaged frame between good ones, through its checksum', async function () {
    const frames = ['first '.repeat(5000), 'second '.repeat(5000), 'third '.repeat(5000)].map((text) =>
      zlib.zstdCompressSync(Buffer.from(text), {params: {[zlib.constants.ZSTD_c_checksumFlag]: 1}}),
    );
    const damaged = Buffer.from(frames[1]!);
    damaged[damaged.length - 2]! ^= 0xff;
    let failure: unknown;
    await collect(chunksOf(Buffer.concat([frames[0]!, damaged, frames[2]!]), 1000), createDecompressStream('zstd')).catch((error: unknown) => (failure = error));
    expect(failure).to.be.instanceOf(Error);
    expect((failure as Error).message).to.match(/checksum/i);
  });
});
