import {expect} from 'chai';
import {Readable} from 'node:stream';

import {OwnershipFilter, type OwnershipFilterOptions} from '../../src/core/postgres/index.js';

async function filter(dump: string, options: OwnershipFilterOptions, chunkSize = 7): Promise<string> {
  const bytes = Buffer.from(dump, 'utf8');
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) chunks.push(bytes.subarray(offset, offset + chunkSize));
  const output = await Readable.from(chunks).pipe(new OwnershipFilter(options)).toArray();
  return Buffer.concat(output).toString('utf8');
}

const BOTH = {owners: true, privileges: true};

describe('ownership filter (restore --no-owner / --no-privileges)', function () {
  const cases: Array<[string, string, OwnershipFilterOptions, string]> = [
    ['drops an owner statement', 'CREATE TABLE public.t (id integer);\nALTER TABLE public.t OWNER TO app_owner;\n', {owners: true, privileges: false}, 'CREATE TABLE public.t (id integer);\n'],
    ['drops owners of every kind', 'ALTER SCHEMA app OWNER TO x;\nALTER FUNCTION public.f() OWNER TO x;\nALTER TYPE public.mood OWNER TO x;\n', {owners: true, privileges: false}, ''],
    ['keeps grants unless asked', 'GRANT SELECT ON TABLE public.t TO app_reader;\n', {owners: true, privileges: false}, 'GRANT SELECT ON TABLE public.t TO app_reader;\n'],
    ['drops grants, revokes and default privileges when asked', 'REVOKE ALL ON SCHEMA public FROM PUBLIC;\nGRANT SELECT ON TABLE public.t TO r;\nALTER DEFAULT PRIVILEGES FOR ROLE o IN SCHEMA public GRANT SELECT ON TABLES TO r;\nSELECT 1;\n', BOTH, 'SELECT 1;\n'],
    ['keeps COPY data that looks like a statement', 'COPY public.t (line) FROM stdin;\nALTER TABLE public.t OWNER TO evil;\nGRANT ALL ON TABLE x TO y;\n\\.\nALTER TABLE public.t OWNER TO o;\n', BOTH, 'COPY public.t (line) FROM stdin;\nALTER TABLE public.t OWNER TO evil;\nGRANT ALL ON TABLE x TO y;\n\\.\n'],
    ['keeps a function body that looks like a statement', "CREATE FUNCTION public.f() RETURNS void\n    LANGUAGE plpgsql\n    AS $_$\nbegin\nALTER TABLE public.t OWNER TO someone;\nend\n$_$;\nALTER FUNCTION public.f() OWNER TO o;\n", BOTH, "CREATE FUNCTION public.f() RETURNS void\n    LANGUAGE plpgsql\n    AS $_$\nbegin\nALTER TABLE public.t OWNER TO someone;\nend\n$_$;\n"],
    ['keeps a multi-line string that looks like a statement', "COMMENT ON TABLE public.t IS 'first line\nGRANT ALL ON TABLE t TO x;\nlast';\nGRANT ALL ON TABLE t TO x;\n", BOTH, "COMMENT ON TABLE public.t IS 'first line\nGRANT ALL ON TABLE t TO x;\nlast';\n"],
    ["is not fooled by a doubled quote or a $ in an identifier", "COMMENT ON TABLE a$b$ IS 'it''s';\nALTER TABLE a$b$ OWNER TO o;\n", BOTH, "COMMENT ON TABLE a$b$ IS 'it''s';\n"],
    ['ignores quotes in comments', "-- it's a comment\nALTER TABLE t OWNER TO o;\n", BOTH, "-- it's a comment\n"],
    ['keeps a last line without a newline', 'SELECT 1;\nALTER TABLE t OWNER TO o;', BOTH, 'SELECT 1;\n'],
  ];
  for (const [what, dump, options, expected] of cases) {
    it(what, async function () {
      for (const size of [1, 7, 4096]) expect(await filter(dump, options, size), `chunks of ${size}`).to.equal(expected);
    });
  }

  it('passes bytes of any encoding through unchanged', async function () {
    const latin = Buffer.from([0x49, 0x4e, 0x53, 0x45, 0x52, 0x54, 0x20, 0xe9, 0xff, 0x0a]);
    const output = Buffer.concat(await Readable.from([latin]).pipe(new OwnershipFilter(BOTH)).toArray());
    expect(output.equals(latin)).to.equal(true);
  });
});
