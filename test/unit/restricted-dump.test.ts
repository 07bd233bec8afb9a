import {expect} from 'chai';
import {Readable} from 'node:stream';

import {RestrictedDumpStream, psqlSupportsRestrict} from '../../src/core/postgres/index.js';

async function throughRestricted(text: string, chunkSize: number): Promise<string> {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) chunks.push(bytes.subarray(offset, offset + chunkSize));
  const output = await Readable.from(chunks).pipe(new RestrictedDumpStream()).toArray();
  return Buffer.concat(output).toString();
}

const body = `SET statement_timeout = 0;\nCOPY public.t (a) FROM stdin;\n${'row\\twith\\tdata\n'.repeat(2000)}\\.\n`;
const dump = `--\n-- PostgreSQL database dump\n--\n\n\\restrict AbC123\n\n${body}\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict AbC123\n\n`;

describe('RestrictedDumpStream', function () {
  for (const chunkSize of [1, 7, 4096, 65_536]) {
    it(`wraps the dump in a \\restrict of its own and drops only pg_dump's pair (chunks of ${chunkSize})`, async function () {
      const output = await throughRestricted(dump, chunkSize);
      const lines = output.split('\n');
      const key = /^\\restrict ([0-9a-f]{48})$/.exec(lines[0]!)?.[1];
      expect(key, lines[0]).to.be.a('string');
      expect(lines.at(-2)).to.equal(`\\unrestrict ${key}`);
      expect(output).not.to.include('AbC123');
      expect(output).to.include(body);
    });
  }

  it('passes a meta-command anywhere else on to psql, which refuses it', async function () {
    const planted = `\\! touch /tmp/x\n${dump}`;
    const output = await throughRestricted(planted, 100);
    expect(output.split('\n')[1]).to.equal('\\! touch /tmp/x');
    // pg_dump's \restrict is no longer before the first statement, so it is not dropped either.
    expect(output).to.include('\\restrict AbC123');
  });

  it('keeps a dump without pg_dump\'s pair whole, with a key of its own around it', async function () {
    const output = await throughRestricted(body, 50);
    expect(output).to.match(/^\\restrict [0-9a-f]{48}\n/);
    expect(output).to.include(body);
    expect(output).to.match(/\n\\unrestrict [0-9a-f]{48}\n$/);
  });

  const versions: Array<[string, boolean]> = [
    ['15.13', false],
    ['15.14', true],
    ['15.20', true],
    ['16.9', false],
    ['16.10', true],
    ['17.6', true],
    ['13.22', true],
    ['12.22', false],
    ['18beta1', true],
    ['18.1', true],
  ];
  for (const [version, supported] of versions) {
    it(`knows whether psql ${version} has \\restrict (${supported})`, function () {
      expect(psqlSupportsRestrict(version)).to.equal(supported);
    });
  }
});
