#!/bin/sh
# A throwaway Ceph cluster with one monitor, one OSD on the in-memory store and radosgw (a real,
# strict S3 server) on loopback, all under DIR: start-radosgw.sh DIR MON_PORT RGW_PORT ACCESS SECRET.
# Prints nothing on success; the daemons' PIDs are in DIR/*.pid (stop them by PID). Needs radosgw,
# ceph-mon and ceph-osd (Debian). The recipe is shared/ENVIRONMENT.md's.
set -eu
D=$1 MON_PORT=$2 RGW_PORT=$3 ACCESS=$4 SECRET=$5
mkdir -p "$D/mon" "$D/osd/ceph-0" "$D/run" "$D/log" "$D/rgw" "$D/crash"
FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms mon client mode = crc
run dir = $D/run
log file = $D/log/\$name.log
crash dir = $D/crash
keyring = $D/keyring
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
paxos propose interval = 0.1
osd objectstore = memstore
memstore device bytes = 1073741824
mon data = $D/mon/\$cluster-\$id
osd data = $D/osd/\$cluster-\$id
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $D/rgw
rgw thread pool size = 32
# SSE-KMS with a fixed test key (radosgw's testing backend), over plain HTTP on loopback.
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = synapse-test-key=c3luYXBzZS10ZXN0LWttcy1rZXktMzItYnl0ZXMhISE=
rgw crypt require ssl = false
CONF
C="-c $D/ceph.conf"
monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$D/monmap" >/dev/null
ceph-mon $C --mkfs -i a --monmap "$D/monmap" >"$D/log/mkfs-mon.out" 2>&1
# Daemons in the foreground as background jobs, every inherited descriptor above 2 closed (a caller
# reading our output through a pipe would otherwise wait for them forever).
start() { name=$1; shift; (exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- </dev/null >"$D/log/$name.out" 2>&1; exec "$@") & echo $! > "$D/$name.pid"; }
start mon ceph-mon $C -f -i a
OSD_ID=$(timeout 60 ceph $C osd new "$OSD_UUID")
ceph-osd $C -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >"$D/log/mkfs-osd.out" 2>&1
start osd ceph-osd $C -f -i "$OSD_ID"
timeout 60 radosgw-admin $C user create --uid=synapse --display-name=synapse --access-key="$ACCESS" --secret="$SECRET" >/dev/null 2>"$D/log/user.err"
start rgw radosgw $C -f -n client.rgw.a
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RGW_PORT/" || true)
  [ "$code" != "000" ] && exit 0
  sleep 0.1
done
echo "radosgw did not answer on port $RGW_PORT" >&2
exit 1
