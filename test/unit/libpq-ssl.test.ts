import {expect} from 'chai';

import {SynapseError} from '../../src/core/errors/index.js';
import {resolveSsl, sslAttempts} from '../../src/core/postgres/index.js';

describe('sslmode as libpq reads it', function () {
  const shapes: Array<[string, Record<string, string>, string, string[]]> = [
    ['libpq\'s default is prefer: SSL unverified, then plain', {}, '127.0.0.1', ['unverified', 'plain']],
    ['disable', {sslmode: 'disable'}, '127.0.0.1', ['plain']],
    ['allow: plain, then SSL', {sslmode: 'allow'}, 'db.internal', ['plain', 'unverified']],
    ['require: SSL without verifying', {sslmode: 'require'}, 'db.internal', ['unverified']],
    ['a Unix socket never uses SSL', {sslmode: 'require'}, '/var/run/postgresql', ['plain']],
  ];
  for (const [title, query, host, expected] of shapes) {
    it(title, function () {
      const attempts = sslAttempts(resolveSsl(new URLSearchParams(query), {}), host);
      expect(attempts.map((attempt) => (attempt === false ? 'plain' : attempt.rejectUnauthorized === false ? 'unverified' : 'verified'))).to.deep.equal(expected);
    });
  }

  it('reads PGSSLMODE when the URL says nothing, and the URL wins over it', function () {
    expect(resolveSsl(new URLSearchParams(), {PGSSLMODE: 'require'}).mode).to.equal('require');
    expect(resolveSsl(new URLSearchParams('sslmode=disable'), {PGSSLMODE: 'require'}).mode).to.equal('disable');
  });

  it('refuses a mode libpq does not know', function () {
    expect(() => resolveSsl(new URLSearchParams('sslmode=no-verify'), {})).to.throw(SynapseError, /libpq knows/);
  });
});
