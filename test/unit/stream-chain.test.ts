import {expect} from 'chai';
import {PassThrough, Readable, Transform, Writable} from 'node:stream';

import {StreamChain, StreamChainFailure} from '../../src/core/pipeline/index.js';

function source(chunks: string[]): Readable {
  return Readable.from(chunks.map((chunk) => Buffer.from(chunk)));
}

function sink(into: Buffer[] = []): Writable {
  return new Writable({write: (chunk: Buffer, _encoding, callback) => (into.push(chunk), callback())});
}

function failingAfter(count: number, message: string): Transform {
  let seen = 0;
  return new Transform({transform: (chunk, _encoding, callback) => (++seen > count ? callback(new Error(message)) : callback(null, chunk))});
}

async function failureOf(promise: Promise<unknown>): Promise<StreamChainFailure> {
  const error = await promise.then(() => undefined, (failure: unknown) => failure);
  expect(error).to.be.instanceOf(StreamChainFailure);
  return error as StreamChainFailure;
}

describe('StreamChain', function () {
  it('passes the bytes through and returns the tasks\' values', async function () {
    const received: Buffer[] = [];
    const values = await new StreamChain().run([{stage: 'dump', stream: source(['a', 'b'])}, {stage: 'store', stream: sink(received)}], [{stage: 'store', promise: Promise.resolve('published')}]);
    expect(Buffer.concat(received).toString()).to.equal('ab');
    expect(values).to.deep.equal(['published']);
  });

  it('reports the stage that failed first, not the ones torn down after it', async function () {
    const chain = new StreamChain();
    const failure = await failureOf(chain.run([{stage: 'dump', stream: source(['a', 'b', 'c'])}, {stage: 'compress', stream: failingAfter(1, 'codec broke')}, {stage: 'store', stream: new PassThrough()}, {stage: 'store', stream: sink()}]));
    expect(failure.stage).to.equal('compress');
    expect((failure.error as Error).message).to.equal('codec broke');
    expect(failure.cancelled).to.equal(false);
    expect(chain.signal.aborted, 'the chain stops whatever listens to its signal').to.equal(true);
  });

  it('fails when a task fails although every stream finished: a child that exited non-zero', async function () {
    const failure = await failureOf(new StreamChain().run([{stage: 'load', stream: source(['x'])}, {stage: 'load', stream: sink()}], [{stage: 'load', promise: Promise.reject(new Error('psql exited with status 3'))}]));
    expect(failure.stage).to.equal('load');
    expect((failure.error as Error).message).to.include('status 3');
  });

  it('says it was cancelled when the caller\'s signal stopped it', async function () {
    const outer = new AbortController();
    const endless = new Readable({read() {}});
    const running = new StreamChain(outer.signal).run([{stage: 'verify', stream: endless}, {stage: 'verify', stream: sink()}]);
    outer.abort();
    expect((await failureOf(running)).cancelled).to.equal(true);
  });
});
