import {expect} from 'chai';

import {locationEnvironment, parseLocations, type LocationSpec} from '../../src/core/config/locations.js';
import {isSynapseError} from '../../src/core/errors/index.js';

const single = {scheme: 'local', location: '/var/backups/pg'};

describe('backup locations (BACKUP_LOCATIONS)', function () {
  const cases: Array<[string, string | undefined, LocationSpec[]]> = [
    ['unset: the single location of BACKUP_STORAGE and BACKUP_DIR, named primary', undefined, [{name: 'primary', scheme: 'local', location: '/var/backups/pg', env: {}}]],
    ['empty, the same', '  ', [{name: 'primary', scheme: 'local', location: '/var/backups/pg', env: {}}]],
    [
      'the primary first, the others named by position',
      'local:/srv/pg,mount:/mnt/nas/pg,s3fs:/mnt/s3',
      [
        {name: 'primary', scheme: 'local', location: '/srv/pg', env: {}},
        {name: 'location-2', scheme: 'mount', location: '/mnt/nas/pg', env: {}},
        {name: 'location-3', scheme: 's3fs', location: '/mnt/s3', env: {}},
      ],
    ],
    [
      'names given, an S3 URL with its own endpoint, region and profile',
      'onsite=/srv/pg, offsite=s3://backups-eu/db1/?endpoint=https://s3.eu-central-003.backblazeb2.com&region=eu-central-003&profile=b2',
      [
        {name: 'onsite', scheme: 'local', location: '/srv/pg', env: {}},
        {
          name: 'offsite',
          scheme: 's3',
          location: 's3://backups-eu/db1/',
          env: {BACKUP_S3_BUCKET: 'backups-eu', BACKUP_S3_PREFIX: 'db1/', BACKUP_S3_ENDPOINT: 'https://s3.eu-central-003.backblazeb2.com', BACKUP_S3_REGION: 'eu-central-003', AWS_PROFILE: 'b2'},
        },
      ],
    ],
    ['a relative directory, from the working directory', 'local:./backups', [{name: 'primary', scheme: 'local', location: '/work/app/backups', env: {}}]],
    ["a plugin's own scheme, its location as written", 'primary=vault:team-a', [{name: 'primary', scheme: 'vault', location: 'team-a', env: {}}]],
  ];
  for (const [what, value, expected] of cases) {
    it(`reads ${what}`, function () {
      expect(parseLocations(value, single, '/work/app')).to.deep.equal(expected);
    });
  }

  const refused: Array<[string, string, RegExp]> = [
    ['credentials in the URL', 's3://AKIA:secret@bucket/pg', /holds credentials.*profile/],
    ['a credential as a parameter', 's3://bucket/pg?secret-access-key=abc', /'secret-access-key' is not a setting of an s3:\/\/ location.*never in the URL/],
    ['a name given twice', 'a=/srv/one,a=/srv/two', /the name 'a' is given to two locations/],
    ['the same place twice', '/srv/pg,copy=local:/srv/pg', /'local:\/srv\/pg' is listed twice/],
    ['an entry without a scheme', 'srv/pg', /'srv\/pg' names no storage/],
    ['an empty entry', '/srv/pg,,/srv/other', /has an empty entry/],
    ['a bucketless URL', 's3:///pg', /names no bucket|is not an s3/],
  ];
  for (const [what, value, message] of refused) {
    it(`refuses ${what}, naming the setting`, function () {
      let failure: unknown;
      try {
        parseLocations(value, single, '/work/app');
      } catch (error) {
        failure = error;
      }
      expect(isSynapseError(failure) && failure.code).to.equal('E_CONFIG');
      expect((failure as Error).message).to.match(/^BACKUP_LOCATIONS: /).and.match(message);
      expect((failure as Error).message).not.to.include('secret@');
    });
  }

  it("gives an S3 location the shared tuning, but never the single location's bucket, endpoint, region or profile", function () {
    const shared = {BACKUP_S3_BUCKET: 'other', BACKUP_S3_ENDPOINT: 'https://minio.local', AWS_PROFILE: 'minio', AWS_REGION: 'us-west-2', BACKUP_S3_PART_SIZE: '16m', PGHOST: 'db'};
    const [, aws] = parseLocations('/srv/pg,aws=s3://bucket/pg?region=eu-west-1', single, '/');
    expect(locationEnvironment(shared, aws!)).to.deep.equal({BACKUP_S3_PART_SIZE: '16m', PGHOST: 'db', BACKUP_S3_BUCKET: 'bucket', BACKUP_S3_PREFIX: 'pg', BACKUP_S3_REGION: 'eu-west-1'});
    const [local] = parseLocations('/srv/pg', single, '/');
    expect(locationEnvironment(shared, local!)).to.deep.equal(shared);
  });
});

describe("the README's BACKUP_LOCATIONS examples", function () {
  it('parse as written, into the locations they describe', async function () {
    const {readFile} = await import('node:fs/promises');
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const examples = [...readme.matchAll(/^BACKUP_LOCATIONS='([^']+)'$/gm)].map((match) => match[1]!);
    expect(examples).to.have.length.at.least(2);
    const parsed = examples.map((example) => parseLocations(example, single, '/').map((location) => [location.name, location.scheme]));
    expect(parsed).to.deep.equal([
      [['primary', 'local'], ['offsite', 's3'], ['nas', 'mount']],
      [['aws', 's3'], ['wasabi', 's3']],
    ]);
    const wasabi = parseLocations(examples[1], single, '/')[1]!;
    expect(wasabi.env).to.include({AWS_PROFILE: 'wasabi', BACKUP_S3_ENDPOINT: 'https://s3.eu-central-2.wasabisys.com', BACKUP_S3_REGION: 'eu-central-2'});
  });
});
