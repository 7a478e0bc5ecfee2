#!/bin/bash
# PID 1 of a guest, instead of systemd (tests/guests/qemu.py boots it): mounts
# the kernel's filesystems and the host's shares, copies the checkout, runs the
# host's command with its output teed back to the host, writes its exit status
# and ends the guest. Lines starting "ig-guest:" are read by the host.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8

fail() {
    echo "ig-guest: $*"
    busybox reboot -f    # QEMU runs with -no-reboot: this ends it
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "ig-guest: init started, $(uname -r) up for $(cut -d' ' -f1 /proc/uptime) s"
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# devtmpfs has no /dev/fd: bash's <(...) and many scripts need it
ln -sfn /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
hostname ig-guest
ip link set lo up

modprobe -a 9p 9pnet_virtio virtio_rng || fail "cannot load the 9p modules"
# loop devices for the blockio tests (losetup needs /dev/loop-control); veth
# and friends load on demand, but the loop driver makes its control node only
# once loaded
modprobe loop || echo "ig-guest: no loop module: the blockio tests will fail" >&2
shares=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /mnt/checkout /mnt/control /mnt/output
# cache=loose: the guest may cache what it reads (halves the copy's time under TCG)
mount -t 9p -o "ro,cache=loose,$shares" checkout /mnt/checkout || fail "cannot mount the checkout"
mount -t 9p -o "$shares" control /mnt/control || fail "cannot mount the control share"
mount -t 9p -o "$shares" output /mnt/output || fail "cannot mount the output share"

# The guest works on a copy: it never writes to the host's checkout. .venv stays:
# the image's, made for this guest, is already in /root/ig-metrics.
mkdir -p /root/ig-metrics
tar -C /mnt/checkout -cf - --exclude=./.git --exclude=./.venv --exclude=./build \
    --exclude=./benchmarks/results --exclude=__pycache__ --exclude=.pytest_cache \
    --exclude='*.egg-info' . | tar -C /root/ig-metrics -xf - || fail "cannot copy the checkout"

set -a
# shellcheck source=/dev/null
. /mnt/control/environment
set +a
cd /root/ig-metrics || fail "no /root/ig-metrics"
echo "ig-guest: running the command"
bash /mnt/control/command </dev/null 2>&1 | tee /mnt/control/output
status=${PIPESTATUS[0]}
echo "$status" >/mnt/control/status
echo "ig-guest: the command exited with status $status"
sync
busybox reboot -f
