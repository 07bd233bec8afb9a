import {expect} from 'chai';

import {DEFAULT_NETWORK_FSTYPES, deviceName, judgeMount, mountOf, parseMountinfo} from '../src/mountinfo.js';

// Recorded from real hosts: an NFSv4 and an NFSv3 client, a CIFS mount with a space in its path,
// an SMB share through rclone, and a dropped mount point left with the local disk underneath.
const MOUNTINFO = `22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
25 22 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
61 22 0:53 / /mnt/backups rw,relatime shared:33 - nfs4 nas.example.com:/export/backups rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.5,local_lock=none,addr=10.0.0.2
62 22 0:54 / /srv/nfs3 rw,relatime shared:34 - nfs 10.0.0.2:/export/old rw,vers=3,rsize=65536,wsize=65536,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.0.2,mountvers=3,mountport=20048,mountproto=udp,local_lock=none,addr=10.0.0.2
63 22 0:55 / /mnt/windows\\040share rw,relatime shared:35 - cifs //fileserver/Backups rw,vers=3.1.1,cache=strict,username=backup,uid=0,noforceuid,gid=0,noforcegid,addr=10.0.0.3,file_mode=0755,dir_mode=0755,soft,nounix,serverino,mapposix,rsize=4194304,wsize=4194304,bsize=1048576,echo_interval=60,actimeo=1,closetimeo=1
64 61 0:56 / /mnt/backups/scratch rw,relatime shared:36 - tmpfs tmpfs rw,size=102400k
70 22 0:39 / /tmp/smb/mnt rw,nosuid,nodev,relatime - fuse.rclone smbtest:share rw,user_id=0,group_id=0
`;

describe('mountinfo', function () {
  const entries = parseMountinfo(MOUNTINFO);

  it('reads mount point, device, type and source, unescaping octal escapes', function () {
    expect(entries.find((entry) => entry.mountId === 63)).to.deep.equal({mountId: 63, device: '0:55', mountPoint: '/mnt/windows share', fsType: 'cifs', source: '//fileserver/Backups'});
    expect(entries.find((entry) => entry.mountId === 61)).to.include({fsType: 'nfs4', source: 'nas.example.com:/export/backups', device: '0:53'});
  });

  const cases: Array<[string, string | undefined, boolean]> = [
    ['/mnt/backups/pg', 'nfs4', true],
    ['/mnt/backups', 'nfs4', true],
    ['/srv/nfs3/db1', 'nfs', true],
    ['/mnt/windows share/pg', 'cifs', true],
    ['/tmp/smb/mnt/backups', 'fuse.rclone', true],
    // The innermost mount decides: a tmpfs inside the NFS mount is not the NFS mount.
    ['/mnt/backups/scratch/pg', 'tmpfs', false],
    // A prefix that is not a path component is not the mount.
    ['/mnt/backupsX/pg', 'ext4', false],
    // A mount point whose share was never mounted (or dropped) is the local disk.
    ['/mnt/nas/pg', 'ext4', false],
  ];
  for (const [directory, fsType, accepted] of cases) {
    it(`${accepted ? 'accepts' : 'refuses'} ${directory} (${fsType})`, function () {
      expect(mountOf(entries, directory)?.fsType).to.equal(fsType);
      const judgement = judgeMount(entries, directory, DEFAULT_NETWORK_FSTYPES);
      expect(judgement.accepted).to.equal(accepted);
      if (!judgement.accepted) expect(judgement.reason).to.include(`'${directory}' is not on a network mount: it is on ${fsType}`);
    });
  }

  it('takes BACKUP_MOUNT_FSTYPES instead of the defaults', function () {
    expect(judgeMount(entries, '/mnt/backups/scratch/pg', ['tmpfs']).accepted).to.equal(true);
    expect(judgeMount(entries, '/mnt/backups/pg', ['cifs']).accepted).to.equal(false);
  });

  it('names a stat() device as mountinfo does', function () {
    expect(deviceName(0x35)).to.equal('0:53');
    expect(deviceName((259 << 8) | 2)).to.equal('259:2');
    expect(deviceName(0x11 | (8 << 8) | (0x12300 << 12))).to.equal(`8:${0x12311}`);
  });
});
