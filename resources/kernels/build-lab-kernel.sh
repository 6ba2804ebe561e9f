#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build (or reuse) the mmuvisor lab kernel from Debian's linux-source-V package.
#
#   build-lab-kernel.sh --cache DIR [--version 7.2] [--flavour default|debug]
#                       [--patch FILE]... [--jobs N]
#
# The result lives in DIR/kernels/linux-V-FLAVOUR-KEY/ (bzImage, modules/*.ko,
# src/ = the configured build tree, usable as KDIR for out-of-tree modules).
# KEY hashes this script, the config fragments, the patches, the version and
# the Debian package version, so any change of input builds anew.
# The last line on stdout is "KERNEL_DIR=<path>".
# apt is used with a private sources list and state under DIR/apt: the
# machine's own apt configuration is never touched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=7.2
flavour=default
cache=""
jobs=$(( $(nproc) + 1 ))
patches=()

die() { echo "build-lab-kernel: $*" >&2; exit 1; }
say() { echo "[lab kernel] $*"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--version) version=${2:?}; shift 2 ;;
	--flavour) flavour=${2:?}; shift 2 ;;
	--cache) cache=${2:?}; shift 2 ;;
	--patch) patches+=("$(realpath "${2:?}")"); shift 2 ;;
	--jobs) jobs=${2:?}; shift 2 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
[ -n "$cache" ] || die "--cache DIR is required"
case "$flavour" in default|debug) ;; *) die "unknown flavour '$flavour' (default, debug)" ;; esac
[[ "$version" =~ ^[0-9]+\.[0-9]+$ ]] || [ "$version" = latest ] || die "version '$version' is not of the form MAJOR.MINOR (or latest)"
for p in "${patches[@]}"; do [ -r "$p" ] || die "cannot read patch $p"; done
for tool in make gcc flex bison bc xz tar patch sha256sum flock; do
	command -v "$tool" >/dev/null || die "'$tool' is missing: apt-get install build-essential flex bison bc xz-utils patch libelf-dev libssl-dev"
done
[ -e /usr/include/libelf.h ] || die "libelf headers missing: apt-get install libelf-dev"
[ -e /usr/include/openssl/ssl.h ] || die "openssl headers missing: apt-get install libssl-dev"

mkdir -p "$cache"/{src,kernels}
# shellcheck source=build-progress.sh
. "$here/build-progress.sh"
# shellcheck source=apt-private.sh
. "$here/apt-private.sh"

pkg=linux-source-$version
# Bump when a change to this script changes what it builds.
recipe=4
apt_private_update || die "cannot update the private package lists"
if [ "$version" = latest ]; then
	version=$(apt_kernel_versions | awk '{print $1}')
	[ -n "$version" ] || die "the package lists know no linux-source-V"
	say "latest: $version"
	pkg=linux-source-$version
fi
pkgver=$(apt_candidate "$pkg")
[ -n "$pkgver" ] && [ "$pkgver" != "(none)" ] || die "no package $pkg in sid, trixie, bookworm or experimental (Debian has: $(apt_kernel_versions))"

fragments=("$here/base.config" "$here/lab.config")
[ "$flavour" = debug ] && fragments+=("$here/debug.config")
key_of() { # key_of PATCH...
	{ echo "recipe=$recipe $version $pkgver $flavour"; cat "${fragments[@]}"; for p in "$@"; do echo "patch"; cat "$p"; done; } | sha256sum | cut -c1-12
}
key=$(key_of "${patches[@]}")
out=$cache/kernels/linux-$version-$flavour-$key
mkdir -p "$out"
exec 8>"$out/.lock"
flock 8
if [ -e "$out/.done" ]; then
	say "cached: $out"
	echo "KERNEL_DIR=$out"
	exit 0
fi
rm -rf "$out/src" "$out/modules"

tarball=$cache/src/$pkg-$pkgver.tar.xz
if [ ! -s "$tarball" ]; then
	say "downloading $pkg $pkgver"
	tmp=$(mktemp -d "$cache/src/dl.XXXXXX")
	( cd "$tmp" && apt-get "${apt_opts[@]}" -qq download "$pkg=$pkgver" >&2 ) || { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
	dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' > "$tarball.part"
	mv "$tarball.part" "$tarball"
	rm -rf "$tmp"
fi

base=""
if [ ${#patches[@]} -gt 0 ]; then
	base=$cache/kernels/linux-$version-$flavour-$(key_of)
	[ -e "$base/.done" ] || base=""
fi
start=$(date +%s)
if [ -n "$base" ]; then
	say "starting from the built unpatched tree $base"
	cp -a "$base/src" "$out/src"
else
	say "unpacking $(basename "$tarball")"
	mkdir -p "$out/src"
	tar -xf "$tarball" -C "$out/src" --strip-components=1
fi
cd "$out/src"
for p in "${patches[@]}"; do
	say "applying $(basename "$p")"
	patch -p1 --forward --batch < "$p" > "$out/patch.log" 2>&1 || { cat "$out/patch.log" >&2; die "patch $p does not apply to $pkg $pkgver"; }
done

log=$out/build.log
: > "$log"
if [ -z "$base" ]; then
	say "configuring: allnoconfig + $(for f in "${fragments[@]}"; do basename "$f"; done | tr '\n' ' ')"
	lab_configure . . "$log" "${fragments[@]}"
fi

say "building bzImage and modules with -j$jobs (log: $log)"
total=""
[ -z "$base" ] && total=$(expected_objects "$version" "$flavour")
make_with_progress "$log" "$total" "$start" -j"$jobs" bzImage modules
cp arch/x86/boot/bzImage "$out/bzImage"
mkdir -p "$out/modules"
find . -name '*.ko' -exec cp {} "$out/modules/" \;
secs=$(( $(date +%s) - start ))
echo "$secs" > "$out/build-seconds"
[ -n "$total" ] && { grep -c '^  CC' "$log" > "$out/build-objects" || true; }
printf '%s\n' "$version" "$pkgver" "$flavour" "${patches[@]}" > "$out/inputs"
touch "$out/.done"
say "built in ${secs}s: $out"
echo "KERNEL_DIR=$out"
