import {expect} from 'chai';

import {evaluateLocations, type BackupFact, type LocationView} from '../../src/core/status/index.js';

function fact(name: string, hour: number, type: BackupFact['type'] = 'hourly', database = 'shop'): BackupFact {
  const at = new Date(Date.UTC(2026, 11, 1, hour));
  return {name, database, type, createdAt: at, completedAt: at, storedBytes: 100, durationMs: 1000};
}

const [b1, b2, b3, b4] = [fact('b1', 1), fact('b2', 2), fact('b3', 3), fact('b4', 4)];

describe('locations against what all of them hold', function () {
  const cases: Array<[string, LocationView[], Array<[string, number, number]>, string[]]> = [
    ['in step', [{name: 'primary', location: '/a', good: [b1, b2]}, {name: 'offsite', location: 's3://b/', good: [b1, b2]}], [['primary', 0, 0], ['offsite', 0, 0]], []],
    ['one behind: a copy on its way, no problem', [{name: 'primary', location: '/a', good: [b1, b2]}, {name: 'offsite', location: 's3://b/', good: [b1]}], [['primary', 0, 0], ['offsite', 1, 1]], []],
    ['two behind: a warning', [{name: 'primary', location: '/a', good: [b1, b2, b3]}, {name: 'offsite', location: 's3://b/', good: [b1]}], [['primary', 0, 0], ['offsite', 2, 2]], ['replication_behind:offsite:shop:hourly']],
    ['an old gap is not behind', [{name: 'primary', location: '/a', good: [b1, b2, b3]}, {name: 'offsite', location: 's3://b/', good: [b3]}], [['primary', 0, 0], ['offsite', 0, 2]], []],
    ['the primary behind its secondary', [{name: 'primary', location: '/a', good: [b1]}, {name: 'offsite', location: 's3://b/', good: [b1, b2, b3, b4]}], [['primary', 3, 3], ['offsite', 0, 0]], ['replication_behind:primary:shop:hourly']],
    ['holding none of a type, with two elsewhere', [{name: 'primary', location: '/a', good: [b1, b2]}, {name: 'offsite', location: 's3://b/', good: []}], [['primary', 0, 0], ['offsite', 2, 2]], ['replication_behind:offsite:shop:hourly']],
    ['unreadable: never OK', [{name: 'primary', location: '/a', good: [b1]}, {name: 'offsite', location: 's3://b/', good: undefined, error: 'EACCES'}], [['primary', 0, 0]], ['location_unreadable:offsite']],
  ];
  for (const [what, views, expected, problems] of cases) {
    it(`judges ${what}`, function () {
      const judged = evaluateLocations(views, ['shop']);
      expect(judged.locations.filter((location) => location.readable).map((location) => [location.name, location.types[0]?.behind ?? 0, location.missing])).to.deep.equal(expected);
      expect(judged.problems.map((problem) => problem.id)).to.deep.equal(problems);
    });
  }

  it('counts per type and database, and only the databases reported on', function () {
    const daily = fact('d1', 5, 'daily');
    const other = fact('o1', 6, 'hourly', 'crm');
    const judged = evaluateLocations([{name: 'primary', location: '/a', good: [b1, b2, b3, daily, other]}, {name: 'offsite', location: 's3://b/', good: [b1, daily]}], ['shop']);
    const offsite = judged.locations[1]!;
    expect(offsite.types.map((type) => [type.type, type.behind])).to.deep.equal([['hourly', 2], ['daily', 0]]);
    expect(offsite.missing).to.equal(2);
  });
});
