import {expect} from 'chai';
import {inspect} from 'node:util';

import {Secret, redact} from '../../src/core/secrets/index.js';

describe('secrets', function () {
  it('never shows a secret when printed, inspected or serialised', function () {
    const secret = new Secret('hunter2-very-secret');
    expect(`${secret}`).to.equal('[redacted]');
    expect(inspect({secret})).not.to.include('hunter2');
    expect(JSON.stringify({secret})).not.to.include('hunter2');
    expect(secret.reveal()).to.equal('hunter2-very-secret');
  });

  const cases: Array<[string, string, string]> = [
    ['a known secret', 'auth failed for p@ss:w0rd/x', 'auth failed for [redacted]'],
    ['its URL-encoded form', 'postgresql://u:p%40ss%3Aw0rd%2Fx@h/db', 'postgresql://u:[redacted]@h/db'],
    ['an unknown password in a URL', 'connecting to postgresql://bob:other@db.internal:5432/app failed', 'connecting to postgresql://bob:[redacted]@db.internal:5432/app failed'],
    ['a conninfo password', "host=x password='a b' user=y", 'host=x password=[redacted] user=y'],
    ['PGPASSWORD=', 'env PGPASSWORD=abc pg_dump', 'env PGPASSWORD=[redacted] pg_dump'],
  ];
  for (const [label, input, expected] of cases) {
    it(`redacts ${label}`, function () {
      expect(redact(input, [new Secret('p@ss:w0rd/x'), undefined])).to.equal(expected);
    });
  }
});
