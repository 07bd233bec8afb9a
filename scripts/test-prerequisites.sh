#!/bin/sh
# Run by `npm test` (pretest): the system tools the test suite uses besides PostgreSQL. On a
# Debian machine as root, missing ones are installed from Debian's packages (the first run takes
# about a minute); elsewhere this says what is missing, and the tests that need it fail naming it.
set -eu

missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need strace strace            # one test watches the fsync calls of a backup
need openssl openssl          # compatibility with `openssl enc`, throwaway TLS certificates
need zstd zstd                # compatibility with the zstd command
need script bsdutils          # terminal output, through a pseudo-terminal
need smbd samba               # a real SMB share for the network-mount backend...
need smbpasswd samba
need rclone rclone            # ...mounted through rclone's FUSE mount
need fusermount3 fuse3
need s3fs s3fs                  # an s3fs-fuse mount of a bucket on s3rver and on...
need radosgw radosgw            # ...Ceph radosgw (strict S3), with one monitor and one OSD
need ceph-mon ceph-mon
need ceph-osd ceph-osd
need curl curl
need systemd-analyze systemd    # `schedule --systemd` units are checked with systemd-analyze verify
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$missing postgresql-15"

[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test prerequisites: installing$missing (Debian packages)"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  # Debian starts the samba daemons it has just installed where it can; the tests start their own
  # on loopback. Only daemons of this install are stopped, never a samba that was already serving.
  case "$missing" in
    *" samba"*) for daemon in smbd nmbd samba-ad-dc; do pkill -x "$daemon" 2>/dev/null || true; done ;;
  esac
else
  echo "test prerequisites: missing$missing; install them (Debian: apt-get install$missing) or the tests that use them fail" >&2
fi
