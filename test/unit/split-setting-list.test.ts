import {expect} from 'chai';

import {derivedDatabaseName, isScratchOf, splitSettingList} from '../../src/core/postgres/database-admin.js';

describe('database admin helpers', function () {
  const lists: Array<[string, string[]]> = [
    ['public', ['public']],
    ['"$user", public', ['$user', 'public']],
    ['"My Schema" , other', ['My Schema', 'other']],
    ['"with ""quotes"""', ['with "quotes"']],
    ['"a,b", c', ['a,b', 'c']],
    ['""', ['']],
    ['', []],
  ];
  for (const [value, items] of lists) {
    it(`splits the setting list '${value}'`, function () {
      expect(splitSettingList(value)).to.deep.equal(items);
    });
  }

  const names: Array<[string, string, string]> = [
    ['app', 'restoring_20260222_143000', 'app_restoring_20260222_143000'],
    ['a'.repeat(63), 'pre_restore_20260222_143000', `${'a'.repeat(26)}_7d3e74a0_pre_restore_20260222_143000`],
    ['ß'.repeat(30), 'x', `${'ß'.repeat(30)}_x`],
    ['ß'.repeat(40), 'pre_restore_20260222_143000', `${'ß'.repeat(13)}_4e835bb8_pre_restore_20260222_143000`],
  ];
  it('never derives the same name for two databases with a long common prefix', function () {
    const common = 'inventory_reporting_warehouse_eu_central_replica_';
    const suffix = 'restoring_20260222_143000_abcdef';
    expect(derivedDatabaseName(`${common}one`, suffix)).not.to.equal(derivedDatabaseName(`${common}two`, suffix));
    expect(isScratchOf(derivedDatabaseName(`${common}one`, suffix), `${common}two`)).to.equal(false);
    expect(isScratchOf(derivedDatabaseName(`${common}one`, suffix), `${common}one`)).to.equal(true);
  });

  for (const [base, suffix, expected] of names) {
    it(`derives a name within 63 bytes from '${base.slice(0, 10)}…' + '${suffix}'`, function () {
      const name = derivedDatabaseName(base, suffix);
      expect(name).to.equal(expected);
      expect(Buffer.byteLength(name)).to.be.at.most(63);
    });
  }
});
