#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build mmuvisor.ko against a lab kernel, the notifier tests and mmuvisor as
# static binaries, pack an initramfs and run them in QEMU (TCG).
#
#   kmod/tests/run-lab.sh KERNEL_DIR [--api folio|range|none] [--bench] [--no-tests]
#                         [--filter TEST] [--bench-args "ARGS"]
#
# KERNEL_DIR is a lab kernel folder (bzImage, modules/, src/). Prints the
# guest console; exit status 0 only if every "LAB:" check passed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
kdir=${1:?usage: run-lab.sh KERNEL_DIR [options]}; shift
api=folio bench= tests=1 filter= bench_args=
while [ $# -gt 0 ]; do
	case "$1" in
	--api) api=$2; shift 2 ;;
	--bench) bench=1; shift ;;
	--no-tests) tests=; shift ;;
	--filter) filter=$2; shift 2 ;;
	--bench-args) bench_args=$2; shift 2 ;;
	*) echo "run-lab: unknown argument $1" >&2; exit 2 ;;
	esac
done
work=$(mktemp -d /tmp/mmv-lab.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The module, in a copy so that variants do not mix objects.
mkdir -p "$work/kmod"
cp -r "$root/kmod/Kbuild" "$root/kmod/Makefile" "$root/kmod/include" "$root"/kmod/*.[ch] "$work/kmod/"
api_var=; [ "$api" = folio ] || api_var="MMUVISOR_API=$api"
make -s -C "$work/kmod" KDIR="$kdir/src" $api_var >&2

# Static test and tool binaries.
export RUSTFLAGS='-C target-feature=+crt-static'
export CARGO_TARGET_DIR="$root/target/lab"
tbin=$(cd "$root" && cargo test --lib --no-run --target x86_64-unknown-linux-gnu 2>&1 |
	sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n1)
case "$tbin" in /*) ;; *) tbin="$root/$tbin" ;; esac
[ -x "$tbin" ] || { echo "run-lab: test binary not built" >&2; exit 1; }
(cd "$root" && cargo build --bin mmuvisor --target x86_64-unknown-linux-gnu -q)
mbin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/debug/mmuvisor"

# The initramfs.
ird="$work/initrd"
mkdir -p "$ird"/{bin,proc,sys,dev,tmp}
cp /bin/busybox "$ird/bin/busybox"
cp "$here/lab-init.sh" "$ird/init"
cp "$work/kmod/mmuvisor.ko" "$tbin" "$mbin" "$ird/"
mv "$ird/$(basename "$tbin")" "$ird/notifier-tests"
cp "$kdir/modules/test_hmm.ko" "$ird/" 2>/dev/null || true
cat > "$ird/lab.conf" <<CONF
RUN_TESTS=$tests
RUN_BENCH=$bench
TEST_FILTER='$filter'
BENCH_ARGS='$bench_args'
CONF
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

timeout 900 qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -nographic -no-reboot \
	-kernel "$kdir/bzImage" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet" > "$work/console.log" 2>&1 < /dev/null &
qpid=$!
trap 'kill $qpid 2>/dev/null || true; rm -rf "$work"' EXIT
wait $qpid || true
cat "$work/console.log"
grep -q "LAB: dmesg clean" "$work/console.log" || exit 1
! grep -q "LAB: FAIL" "$work/console.log" || exit 1
if [ -n "$tests" ]; then grep -q "LAB: tests rc=0" "$work/console.log" || exit 1; fi
if [ -n "$bench" ]; then grep -q "LAB: bench rc=0" "$work/console.log" || exit 1; fi
echo "run-lab: all LAB checks passed"
