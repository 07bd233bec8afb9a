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

  describe('their WAL archives', function () {
    const area = (keys: string[], newest?: string): LocationView['wal'] => ({keys, newest});
    const cases: Array<[string, Array<LocationView['wal']>, Array<[string, number | undefined]>, string[]]> = [
      ['in step', [area(['w1', 'w2'], 'S2'), area(['w1', 'w2'], 'S2')], [['primary', 0], ['offsite', 0]], []],
      ['one file on its way: no problem', [area(['w1', 'w2'], 'S2'), area(['w1'], 'S1')], [['primary', 0], ['offsite', 1]], []],
      ['behind by two: a warning', [area(['w1', 'w2', 'w3'], 'S3'), area(['w1'], 'S1')], [['primary', 0], ['offsite', 2]], ['wal_behind:offsite']],
      ['the primary lacking what the other holds', [area(['w3'], 'S3'), area(['w1', 'w2', 'w3'], 'S3')], [['primary', 2], ['offsite', 0]], ['wal_behind:primary']],
      ['an unreadable area: never OK', [area(['w1'], 'S1'), {error: 'EACCES'}], [['primary', 0], ['offsite', undefined]], ['wal_unreadable:offsite']],
      ['no archive anywhere: nothing to judge', [area([]), area([])], [], []],
      ['an area not read (no archive asked for)', [area(['w1', 'w2', 'w3']), undefined], [['primary', 0]], []],
    ];
    for (const [what, areas, expected, problems] of cases) {
      it(`judges ${what}`, function () {
        const views: LocationView[] = areas.map((wal, index) => ({name: index === 0 ? 'primary' : 'offsite', location: `/${index}`, good: [b1], ...(wal ? {wal} : {})}));
        const judged = evaluateLocations(views, ['shop']);
        expect(judged.locations.filter((location) => location.wal).map((location) => [location.name, location.wal!.missing])).to.deep.equal(expected);
        expect(judged.problems.map((problem) => problem.id)).to.deep.equal(problems);
        for (const problem of judged.problems) expect(problem.alert).to.equal('alert.archive_lag');
      });
    }
  });
});
