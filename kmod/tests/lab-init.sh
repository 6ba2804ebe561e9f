#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the kmod lab initramfs built by run-lab.sh: loads mmuvisor.ko,
# checks that unload is refused while a file is open, runs the notifier
# tests (and the conversion benchmark), checks dmesg, powers off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /tmp && mount -t tmpfs tmp /tmp
. /lab.conf
echo "LAB: kernel $(uname -r)"
insmod /mmuvisor.ko || echo "LAB: FAIL insmod"
exec 3</dev/mmuvisor
if rmmod mmuvisor 2>/dev/null; then echo "LAB: FAIL rmmod while open succeeded"; else echo "LAB: ok rmmod refused while open"; fi
exec 3<&-
[ -e /dev/mmuvisor ] || insmod /mmuvisor.ko
if [ -n "$RUN_TESTS" ]; then
	/notifier-tests ${TEST_FILTER:-notifier_client} --test-threads=1 --nocapture
	echo "LAB: tests rc=$?"
fi
if [ -n "$RUN_BENCH" ]; then
	insmod /test_hmm.ko || echo "LAB: FAIL insmod test_hmm"
	/mmuvisor bench convert $BENCH_ARGS
	echo "LAB: bench rc=$?"
	rmmod test_hmm
fi
if rmmod mmuvisor; then echo "LAB: ok rmmod"; else echo "LAB: FAIL rmmod"; fi
if dmesg | grep -E "WARNING:|BUG:|BUG |circular locking|recursive locking|inconsistent lock|DEBUG_LOCKS_WARN|turning off the locking|lock held when returning|suspicious RCU"; then
	echo "LAB: FAIL dmesg"
	dmesg | tail -80
else
	echo "LAB: dmesg clean"
fi
poweroff -f
