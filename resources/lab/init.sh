#!/bin/busybox sh
# The lab's init (PID 1 in the lab VM): mount what a host has, share the
# host's files (/ read-only at /host, the current folder writable at its own
# path), load the modules, run the command, report its status.
/bin/busybox --install -s /bin
export PATH=/lab/bin:/bin:/sbin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
# A stock kernel's own modules (virtio-mmio and 9p for the shares, kvm), in
# their dependency order; a built lab kernel has them built in.
for m in /lab/boot-modules/*.ko; do
	[ -e "$m" ] && { insmod "$m" || echo "[lab] insmod $m failed; the kernel said: $(dmesg | tail -n1 | sed 's/^\[[^]]*\] //')"; }
done
opts=trans=virtio,version=9p2000.L,msize=524288,cache=loose
# The output share writes through (no cache): what the command wrote before
# a kernel crash reaches the host.
mount -t 9p -o "${opts%,cache=loose}" labout /lab/out || echo "[lab] cannot mount the output share"
mount -t 9p -o "$opts,ro" hostroot /host || echo "[lab] cannot mount the host's root"
. /lab/env.sh
if [ -n "$LAB_CWD" ]; then
	mkdir -p "$LAB_CWD"
	mount -t 9p -o "$opts" cwd "$LAB_CWD" || echo "[lab] cannot mount $LAB_CWD"
	cd "$LAB_CWD"
fi
for m in /lab/modules/*.ko; do
	[ -e "$m" ] && { insmod "$m" || echo "[lab] insmod $m failed"; }
done
# Swap for the reclaim drills: a loop device over a ramfs file, which keeps
# swap-cache folios the way a disk does. ramfs, not tmpfs: tmpfs pages can
# themselves be swapped, so reclaim could write the swap file's own pages to
# the swap device it backs (a debug-kernel lab hung once under OOM with it).
# zram only where there is no loop device: it is a synchronous device, whose
# swap-ins drop the swap cache, so one case of exclusive-reclaim cannot
# happen on it.
if [ -e /dev/loop0 ]; then
	mkdir -p /run/swapfs && mount -t ramfs ramfs /run/swapfs
	{ dd if=/dev/zero of=/run/swapfs/swap bs=1M count=64 2>/dev/null && losetup /dev/loop0 /run/swapfs/swap &&
		mkswap /dev/loop0 >/dev/null && swapon /dev/loop0; } || echo "[lab] cannot set up loop swap"
elif [ -e /sys/block/zram0/disksize ]; then
	{ echo 256M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0; } ||
		echo "[lab] cannot set up zram swap"
fi
echo 1 > /proc/sys/kernel/panic_on_oops
# Timekeeping the drills rely on (src/lab/clock.rs): on a busy host the lab
# kernel can still lose its APIC timer or its TSC, which makes timed drills
# weaker and nested guests crawl. Say so rather than run quietly on a tick.
dmesg | grep -q -e "APIC timer disabled" -e "Marking TSC unstable" &&
	echo "[lab] warning: the lab kernel's timers are degraded (APIC timer or TSC lost at boot: host CPUs busy?); timed drills are weaker in this run"
sh /lab/cmd.sh
echo $? > /lab/out/status
dmesg > /lab/out/dmesg
sync
# No ACPI in the lab kernel: a reset, which QEMU's -no-reboot makes its exit.
reboot -f
