import {expect} from 'chai';
import {Readable, Writable} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import {journalKeysToPrune} from '../../src/core/journal/index.js';
import {classifyKey, journalKey} from '../../src/core/naming/index.js';
import {DumpCompletionObserver, endsWithDumpCompletion} from '../../src/core/pipeline/index.js';
import {compareFingerprints, type SequencePosition} from '../../src/core/postgres/index.js';

const COMPLETE = 'SET row_security = off;\n\n--\n-- PostgreSQL database dump complete\n--\n\n';

describe('trust: the pure parts', function () {
  describe("pg_dump's completion line", function () {
    const cases: Array<[string, string, boolean]> = [
      ['a plain dump of pg_dump before 15.14', COMPLETE, true],
      ['a dump with the \\unrestrict line of pg_dump 15.14 and later', `${COMPLETE}\\unrestrict pkOG2ioeiAkVEqvfFnl1eM18wFpouHQjht0c2O9v5mldRoMekU1wghJ4t2b6eiw\n\n`, true],
      ['a dump without a final newline', COMPLETE.trimEnd(), true],
      ['a dump cut before its completion block', 'CREATE TABLE t (id int);\n', false],
      ['a dump cut inside the completion block', 'SET row_security = off;\n\n--\n-- PostgreSQL database dump complete\n', false],
      ['the completion comment followed by more SQL', `${COMPLETE}DROP TABLE t;\n`, false],
      ['the completion comment quoted in data, not at the end', `${COMPLETE}\\unrestrict abc\nCOPY t FROM stdin;\n`, false],
      ['an empty dump', '', false],
    ];
    for (const [what, text, expected] of cases) {
      it(`${expected ? 'accepts' : 'refuses'} ${what}`, function () {
        expect(endsWithDumpCompletion(text)).to.equal(expected);
      });
    }

    async function observe(chunks: Buffer[], options: {refuseIncomplete?: () => Error} = {}): Promise<boolean> {
      const observer = new DumpCompletionObserver(options);
      await pipeline(Readable.from(chunks), observer, new Writable({write: (_chunk, _encoding, callback) => callback()}));
      return observer.complete;
    }

    it('finds the block split across chunks of any size, and in reused buffers', async function () {
      const dump = Buffer.from(`${'x'.repeat(5000)}\n${COMPLETE}`);
      for (const size of [1, 7, 100, 1023, 1024, 4096, dump.length]) {
        const chunks: Buffer[] = [];
        for (let offset = 0; offset < dump.length; offset += size) chunks.push(dump.subarray(offset, offset + size));
        expect(await observe(chunks), `chunks of ${size}`).to.equal(true);
      }
      // A block reused for the next chunk after it was passed on must not change what was seen.
      const reused = Buffer.from(dump);
      const observer = new DumpCompletionObserver();
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          chunk.fill(0x78);
          callback();
        },
      });
      await pipeline(Readable.from([reused]), observer, sink);
      expect(observer.complete).to.equal(true);
    });

    it('fails the stream with the given error when asked to refuse an incomplete dump', async function () {
      const refused = new Error('incomplete');
      await observe([Buffer.from('CREATE TABLE t (id int);\n')], {refuseIncomplete: () => refused}).then(
        () => expect.fail('an incomplete dump passed'),
        (error: unknown) => expect(error).to.equal(refused),
      );
      expect(await observe([Buffer.from(COMPLETE)], {refuseIncomplete: () => refused})).to.equal(true);
    });
  });

  describe('the run journal', function () {
    it('names entries so that their keys sort by time, and classifies them as its own', function () {
      const earlier = journalKey(new Date('2026-11-29T09:59:59.999Z'), '0123abcd');
      const later = journalKey(new Date('2026-11-29T10:00:00.000Z'), '00000000');
      expect(earlier).to.equal('synapse-backup.journal.20261129T095959999Z.0123abcd.json');
      expect(earlier < later).to.equal(true);
      expect(classifyKey(earlier)).to.deep.equal({kind: 'journal'});
      for (const foreign of ['synapse-backup.journal.20261129T095959999Z.0123abcd.json.bak', 'synapse-backup.journal.x.0123abcd.json', 'synapse-backup.journal.20261129T095959999Z.0123ABCD.json']) {
        expect(classifyKey(foreign).kind, foreign).to.equal('foreign');
      }
    });

    const entry = (index: number, kind: string | undefined) => ({key: `k${String(1000 - index).padStart(4, '0')}`, kind});
    const cases: Array<[string, Array<string | undefined>, number, number[]]> = [
      ['keeps everything under the limit', ['backup/succeeded', 'backup/succeeded'], 5, []],
      ['prunes the oldest beyond the limit', ['backup/succeeded', 'backup/succeeded', 'backup/succeeded', 'backup/succeeded'], 2, [2, 3]],
      ['keeps the newest entry of each kind however old', ['backup/succeeded', 'backup/succeeded', 'restore-test/succeeded', 'backup/failed', 'backup/succeeded'], 2, [4]],
      ['lets unreadable entries shield nothing, not even each other', ['backup/succeeded', undefined, undefined, 'verify/failed'], 1, [1, 2]],
    ];
    for (const [what, kinds, keep, pruned] of cases) {
      it(what, function () {
        const entries = kinds.map((kind, index) => entry(index, kind));
        expect(journalKeysToPrune(entries, keep)).to.deep.equal(pruned.map((index) => entries[index]!.key));
      });
    }
  });

  describe('comparing fingerprints', function () {
    const table = (name: string, rows: number) => ({schema: 'public', name, rows});
    const sequence = (lastValue: number, isCalled = true, increment = 1): SequencePosition => ({schema: 'public', name: 's', lastValue: String(lastValue), isCalled, increment: String(increment)});
    const cases: Array<[string, SequencePosition, SequencePosition, boolean]> = [
      ['a sequence restored where it was', sequence(10), sequence(10), true],
      ['a sequence that advanced while pg_dump ran', sequence(10), sequence(15), true],
      ['a sequence restored behind', sequence(10), sequence(9), false],
      ['a sequence first called while pg_dump ran', sequence(1, false), sequence(1, true), true],
      ['a sequence that lost its first call', sequence(1, true), sequence(1, false), false],
      ['a descending sequence that moved on', sequence(-10, true, -1), sequence(-12, true, -1), true],
      ['a descending sequence restored behind', sequence(-10, true, -1), sequence(-9, true, -1), false],
      ['a bigint one behind, past 2^53 where numbers lose it', {...sequence(0), lastValue: '9007199254740993'}, {...sequence(0), lastValue: '9007199254740992'}, false],
    ];
    for (const [what, recorded, restored, same] of cases) {
      it(`${same ? 'accepts' : 'reports'} ${what}`, function () {
        expect(compareFingerprints({tables: [], sequences: [recorded]}, {tables: [], sequences: [restored]})).to.have.length(same ? 0 : 1);
      });
    }

    it('compares every table, whichever place the one that differs has', function () {
      const names = ['first', 'second', 'third', 'fourth', 'last'];
      for (const [index, differing] of names.entries()) {
        const recorded = names.map((name) => table(name, 10));
        const restored = names.map((name, at) => table(name, at === index ? 9 : 10));
        expect(compareFingerprints({tables: recorded, sequences: []}, {tables: restored, sequences: []}), differing).to.deep.equal([
          {kind: 'table', schema: 'public', name: differing, expected: '10 rows', actual: '9 rows'},
        ]);
      }
      // Every sequence too, the first one included.
      const sequences = ['s1', 's2', 's3'].map((name) => ({schema: 'public', name, lastValue: '10', isCalled: true, increment: '1'}));
      const behind = sequences.map((sequence, at) => (at === 0 ? {...sequence, lastValue: '9'} : sequence));
      expect(compareFingerprints({tables: [], sequences}, {tables: [], sequences: behind}).map((difference) => difference.name)).to.deep.equal(['s1']);
    });

    it('reports each table whose rows differ, and objects on one side only', function () {
      const differences = compareFingerprints({tables: [table('a', 1), table('b', 2), table('gone', 3)], sequences: []}, {tables: [table('a', 1), table('b', 3), table('new', 0)], sequences: []});
      expect(differences).to.deep.equal([
        {kind: 'table', schema: 'public', name: 'b', expected: '2 rows', actual: '3 rows'},
        {kind: 'table', schema: 'public', name: 'gone', expected: '3 rows', actual: undefined},
        {kind: 'table', schema: 'public', name: 'new', expected: undefined, actual: '0 rows'},
      ]);
    });
  });
});
