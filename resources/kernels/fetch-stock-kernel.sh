#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Fetch (or reuse) one of Debian's prebuilt amd64 kernels for the lab.
#
#   fetch-stock-kernel.sh --cache DIR [--version 7.2|6.12|6.1|7.3|latest]
#                         [--flavour amd64|cloud|rt]
#
# Which suite: the one whose linux-image-amd64 has that MAJOR.MINOR
# (bookworm 6.1, trixie 6.12, sid 7.2, experimental 7.3 today); latest is
# the newest of them. The result lives in DIR/kernels/stock-UNAME-KEY/:
#   bzImage             the kernel as Debian ships it
#   boot-modules/NN-*.ko the kernel's own modules the lab loads, in order
#                       (kvm, kvm_amd, virtio-mmio, 9p, loop and what they
#                       depend on), decompressed
#   src                 the kernel's headers: KDIR for the helper module
#   make-args           extra `make` arguments for out-of-tree modules
#   stock               package, version and `uname -r`
# KEY hashes this script, the suite and the package version.
# The last line on stdout is "KERNEL_DIR=<path>".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=7.2
flavour=amd64
cache=""

die() { echo "fetch-stock-kernel: $*" >&2; exit 1; }
say() { echo "[lab kernel] $*"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--version) version=${2:?}; shift 2 ;;
	--flavour) flavour=${2:?}; shift 2 ;;
	--cache) cache=${2:?}; shift 2 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
[ -n "$cache" ] || die "--cache DIR is required"
case "$flavour" in amd64|cloud|rt) ;; *) die "unknown stock flavour '$flavour' (amd64, cloud, rt)" ;; esac
[[ "$version" =~ ^[0-9]+\.[0-9]+$ ]] || [ "$version" = latest ] || die "version '$version' is not of the form MAJOR.MINOR (or latest)"
for tool in dpkg-deb xz objdump strings sha256sum flock make gcc; do
	command -v "$tool" >/dev/null || die "'$tool' is missing: apt-get install dpkg xz-utils binutils make gcc"
done

mkdir -p "$cache/kernels"
# shellcheck source=apt-private.sh
. "$here/apt-private.sh"
apt_private_update || die "cannot update the private package lists"

# Bump when a change to this script changes what it produces.
recipe=1
suites=(bookworm trixie sid experimental)
meta=linux-image-amd64
[ "$flavour" = amd64 ] || meta=linux-image-$flavour-amd64

# MAJOR.MINOR of a Debian kernel package version (7.3~rc7-1~exp1 -> 7.3).
major_minor() { sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<< "$1"; }
offered=()
suite=""
for s in "${suites[@]}"; do
	v=$(apt_candidate "$meta" "$s")
	[ -n "$v" ] || continue
	mm=$(major_minor "$v")
	offered+=("$mm ($s)")
	if [ "$version" = latest ] || [ "$mm" = "$version" ]; then
		suite=$s
		pkgver=$v
		[ "$version" = latest ] || break
	fi
done
[ -n "$suite" ] || die "Debian has no prebuilt $meta $version (it has: ${offered[*]:-none})"
[ "$version" = latest ] && say "latest: $(major_minor "$pkgver") ($suite)"

# Depends of PKG in SUITE whose names match REGEX, one per line.
depends_matching() {
	apt_memo "deps-$1-$2" apt-cache "${apt_opts[@]}" show "$1/$2" 2>/dev/null |
		awk '/^Depends:/ {sub(/^Depends: /, ""); print; exit}' | tr ',|' '\n\n' |
		awk '{print $1}' | grep -E "$3" | sort -u || true
}
image=$(depends_matching "$meta" "$suite" '^linux-image-')
[ -n "$image" ] || die "$meta in $suite names no linux-image package"
headers=${image/linux-image-/linux-headers-}
pkgs=("$image" "$headers")
mapfile -t more < <(depends_matching "$image" "$suite" '^linux-(binary|modules|base)-'; depends_matching "$headers" "$suite" '^linux-(headers|kbuild)-')
pkgs+=("${more[@]}")

key=$({ echo "recipe=$recipe $suite $pkgver"; cat "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)
out=$cache/kernels/stock-${image#linux-image-}-$key
mkdir -p "$out"
exec 8>"$out/.lock"
flock 8
if [ -e "$out/.done" ]; then
	say "cached: $out"
	echo "KERNEL_DIR=$out"
	exit 0
fi
find "$out" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
start=$(date +%s)

say "downloading Debian's $image $pkgver ($suite) and its headers"
dl=$out/deb
mkdir -p "$dl"
sel=()
for p in "${pkgs[@]}"; do sel+=("$p/$suite"); done
( cd "$dl" && apt-get "${apt_opts[@]}" -qq download "${sel[@]}" >&2 ) || die "apt-get download ${pkgs[*]} from $suite failed"
root=$out/root
mkdir -p "$root"
for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$root"; done

moddir=$(find "$root" -maxdepth 5 -path '*/modules/*' -type d -name kernel -printf '%h\n' -quit)
[ -n "$moddir" ] || die "$image has no modules folder"
uname=$(basename "$moddir")
vmlinuz=$moddir/vmlinuz
[ -e "$vmlinuz" ] || vmlinuz=$root/boot/vmlinuz-$uname
[ -e "$vmlinuz" ] || die "$image has no vmlinuz"
cp "$vmlinuz" "$out/bzImage"
config=$moddir/config
[ -e "$config" ] || config=$root/boot/config-$uname
[ -e "$config" ] || die "$image has no config"
cp "$config" "$out/config"
# What the drills need and the kernel may lack: said once here; the drills
# that need it then report SKIP with the reason (Debian's 6.1 and 6.12 have
# no DEVICE_PRIVATE, so no make_device_exclusive()).
missing=()
for opt in CONFIG_DEVICE_PRIVATE CONFIG_ZONE_DEVICE CONFIG_MMU_NOTIFIER CONFIG_NUMA_EMU CONFIG_USERFAULTFD CONFIG_MEMCG; do
	grep -q "^$opt=y" "$config" || missing+=("$opt")
done
[ ${#missing[@]} -eq 0 ] || say "$uname lacks ${missing[*]}: the drills that need it will skip"

# The lab's modules and what they depend on (modinfo's depends=), deps first.
declare -A path_of=() loaded=()
while IFS= read -r -d '' f; do
	n=$(basename "$f"); n=${n%%.ko*}; path_of[${n//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko*' -print0)
mkdir -p "$out/boot-modules" "$out/tmp"
order=0
unpack() { # unpack MODULE FILE
	case "$1" in
	*.xz) xz -dc "$1" > "$2" ;;
	*.zst) zstd -qdc "$1" > "$2" ;;
	*.gz) gzip -dc "$1" > "$2" ;;
	*) cp "$1" "$2" ;;
	esac
}
add_module() { # add_module NAME
	local name=${1//-/_} f tmp dep
	[ -n "${loaded[$name]:-}" ] && return
	loaded[$name]=1
	f=${path_of[$name]:-}
	if [ -z "$f" ]; then
		# Built in: nothing to load.
		grep -qE "/${name//_/[-_]}\.ko\$" "$moddir/modules.builtin" && return
		die "$uname has no module $name (neither built in nor in linux-modules)"
	fi
	tmp=$out/tmp/$name.ko
	unpack "$f" "$tmp"
	for dep in $(strings -a "$tmp" | sed -n 's/^depends=//p' | tr ',' ' '); do
		add_module "$dep"
	done
	order=$((order + 1))
	mv "$tmp" "$out/boot-modules/$(printf %02d $order)-$name.ko"
}
# kvm_amd: the lab's CPU; virtio_mmio and 9p: the host's files (microvm's
# devices, found through ACPI); loop: the reclaim drills' swap.
for m in kvm:KVM kvm_amd:KVM_AMD virtio_mmio:VIRTIO_MMIO 9pnet_virtio:NET_9P_VIRTIO 9p:9P_FS loop:BLK_DEV_LOOP; do
	grep -q "^CONFIG_${m#*:}=y" "$config" || add_module "${m%%:*}"
done
rm -rf "$out/tmp"

# The headers: KDIR for the helper module. Debian's Makefile there names
# /usr/src; point it at this copy. vmlinux there only feeds BTF generation
# with Debian's pahole: without it Kbuild skips BTF for our module.
kdir=$root/usr/src/linux-headers-$uname
[ -e "$kdir/Makefile" ] || die "$headers has no Makefile"
sed -i "s|/usr/src/|$root/usr/src/|g" "$kdir/Makefile"
if [ -e "$kdir/vmlinux" ]; then mv "$kdir/vmlinux" "$kdir/vmlinux.btf-base"; fi
ln -sfn "$kdir" "$out/src"

# Kbuild's programs from a newer suite want a newer glibc than this
# machine's: run them with that suite's own (sid's is newest and reads
# older binaries too).
newest_glibc() { objdump -T "$1" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1; }
host_glibc=$(getconf GNU_LIBC_VERSION | awk '{print $2}')
wrap=()
while IFS= read -r -d '' f; do
	[ "$(od -An -tx1 -N4 "$f" | tr -d ' ')" = 7f454c46 ] || continue
	need=$(newest_glibc "$f")
	if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$host_glibc" | sort -V | tail -n1)" != "$host_glibc" ]; then
		wrap+=("$f")
	fi
done < <(find "$root/usr/lib" -path '*linux-kbuild*' -type f -perm -u+x -print0)
if [ ${#wrap[@]} -gt 0 ]; then
	say "Kbuild's programs need a newer glibc than this machine's $host_glibc: fetching sid's"
	( cd "$dl" && apt-get "${apt_opts[@]}" -qq download libc6/sid >&2 ) || die "apt-get download libc6/sid failed"
	libc=$out/libc
	dpkg-deb -x "$dl"/libc6_*.deb "$libc"
	lib=$libc/usr/lib/x86_64-linux-gnu
	for f in "${wrap[@]}"; do
		mv "$f" "$f.elf"
		printf '#!/bin/sh\nexec %s --library-path %s --argv0 "$0" %s "$@"\n' "$lib/ld-linux-x86-64.so.2" "$lib" "$f.elf" > "$f"
		chmod +x "$f"
	done
fi

# The compiler: the kernel's own gcc where this machine has it, else the
# machine's gcc with the options only newer ones know translated.
cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*/\1/p' "$config")
if ! command -v "$cc" >/dev/null; then
	say "$uname was built with $cc, which this machine lacks: using $(gcc -dumpfullversion 2>/dev/null || echo gcc) with translated options"
	cat > "$out/cc" <<-'EOS'
	#!/bin/bash
	# gcc for a kernel built with a newer one: options it lacks, translated.
	args=()
	for a in "$@"; do
		case "$a" in
		-fmin-function-alignment=*) args+=("-falign-functions=${a#*=}") ;;
		*) args+=("$a") ;;
		esac
	done
	exec gcc "${args[@]}"
	EOS
	chmod +x "$out/cc"
	printf '%s\n' "CC=$out/cc" "KCFLAGS=-Wno-attributes" > "$out/make-args"
fi

# Only what the lab uses stays: the headers, kbuild and the picked modules.
rm -rf "$dl" "$moddir/kernel" "$root/boot" "$root/usr/share"
printf '%s\n' "$image $pkgver $uname" > "$out/stock"
printf '%s\n' "$version" "$pkgver" "stock-$flavour" "$suite" > "$out/inputs"
echo "$(( $(date +%s) - start ))" > "$out/build-seconds"
touch "$out/.done"
say "ready in $(( $(date +%s) - start ))s: $out ($uname)"
echo "KERNEL_DIR=$out"
