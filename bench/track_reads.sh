#!/bin/bash
# Reads by other processes must not count as changes (issue 9, defect 9).
#
# Usage (root, Linux 6.14+, e2fsprogs): bash bench/track_reads.sh BACKUP_FS_BINARY [read]
#
# A 256 MiB file of random data on a loop-mounted ext4, `backup-fs track` running, a first
# change-tracked write; then 1% of its 4 KiB blocks rewritten in place (scattered) and, with
# `read`, one sequential read of the whole file by another process (cat). Prints the second
# write's change_source, the bytes it read, bytes read / bytes changed, and its reason.
set -e
BIN=$(realpath "$1")
W=$(mktemp -d "${TMPDIR:-/tmp}/track-reads.XXXX")
truncate -s 700M $W/fs.img; mkfs.ext4 -q -F $W/fs.img; mkdir $W/mnt; mount -o loop $W/fs.img $W/mnt
mkdir $W/mnt/src; head -c 268435456 /dev/urandom > $W/mnt/src/data.bin
$BIN --store $W/store init --change-tracking --min-delta-size 1M >/dev/null 2>&1
$BIN --store $W/store track $W/mnt/src 2>/dev/null & TP=$!
sleep 1
$BIN --store $W/store write $W/mnt/src >/dev/null 2>&1
python3 - $W/mnt/src/data.bin <<'PY'
import os,sys,random
f=os.open(sys.argv[1],os.O_WRONLY); random.seed(1)
n=268435456//4096
for b in random.sample(range(n), n//100): os.pwrite(f, os.urandom(4096), b*4096)
os.close(f)
PY
sleep 2.5
[ "$2" = "read" ] && cat $W/mnt/src/data.bin > /dev/null
$BIN --store $W/store write $W/mnt/src --json | python3 -c "import json,sys; d=json.load(sys.stdin); f=d['files'][0]; print(f['change_source'], f['bytes_read'], round(f['bytes_read']/(268435456/100),2), f['reason'])"
kill $TP; wait $TP 2>/dev/null || true
umount $W/mnt; rm -rf $W
