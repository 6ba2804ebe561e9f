#!/bin/busybox sh
# A nested test guest's init: run what follows `--` on the kernel command
# line (default: a greeting), then report its exit status on the debug-exit
# port 0xf4, which mmuvisor turns into its own exit status.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "mmuvisor-guest: userspace up, $(nproc) CPUs"
if [ $# -gt 0 ]; then
	sh -c "$*"
else
	uname -a
fi
rc=$?
echo "mmuvisor-guest: exit $rc"
printf "\\$(printf %03o $((rc & 255)))" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
reboot -f
