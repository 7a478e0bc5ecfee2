#!/bin/busybox sh
# PID 1 of the guests' initramfs (tests/guests/initramfs.py): loads the modules
# that a virtio ext4 root needs, mounts /dev/vda and hands over to the guest's init.
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev

fail() {
    echo "ig-guest: initramfs: $*"
    reboot -f    # QEMU runs with -no-reboot: this ends it
}

for module in /modules/*.ko; do
    insmod "$module" || fail "insmod $module failed"
done
tries=0
until [ -b /dev/vda ]; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || fail "no /dev/vda after 10 s"
    sleep 0.1
done
mount -t ext4 /dev/vda /newroot || fail "cannot mount /dev/vda"
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/ig-guest-init
