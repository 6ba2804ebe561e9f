#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Fetch (or reuse) the lab's assets from Debian bookworm with a private apt
# configuration: busybox (static) for the lab's and the test guests' init, and
# Debian's stock kernel image as the nested test guest's kernel.
#
#   fetch-assets.sh --cache DIR --scripts DIR
#
# The result lives in DIR/assets/KEY/ (busybox, vmlinuz, vmlinux, versions);
# the last line on stdout is "ASSETS_DIR=<path>". vmlinux is the kernel
# inside vmlinuz (an ELF with a PVH entry), decompressed here once, so that a
# nested guest can boot without running the kernel's own decompressor.
set -euo pipefail
cache="" scripts=""
die() { echo "fetch-assets: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case "$1" in
	--cache) cache=${2:?}; shift 2 ;;
	--scripts) scripts=${2:?}; shift 2 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
[ -n "$cache" ] && [ -n "$scripts" ] || die "usage: fetch-assets.sh --cache DIR --scripts DIR"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing: apt-get install dpkg"
# shellcheck source=../kernels/apt-private.sh
. "$scripts/apt-private.sh"
apt_private_update || die "cannot update the private package lists"

bb_ver=$(apt_candidate busybox-static bookworm)
[ -n "$bb_ver" ] || die "busybox-static not found in bookworm"
# The stock kernel: what bookworm's linux-image-amd64 meta-package points at.
meta_ver=$(apt_candidate linux-image-amd64 bookworm)
[ -n "$meta_ver" ] || die "linux-image-amd64 not found in bookworm"
kpkg=$(apt_memo "show-linux-image-amd64-$meta_ver" apt-cache "${apt_opts[@]}" show "linux-image-amd64=$meta_ver" 2>/dev/null \
	| awk -F': ' '/^Depends:/ {print $2; exit}' | tr ',' '\n' | grep -o 'linux-image-[0-9][^ ]*' | head -n1)
[ -n "$kpkg" ] || die "cannot tell which kernel linux-image-amd64 $meta_ver depends on"
kver=$(apt_candidate "$kpkg" bookworm)
[ -n "$kver" ] || kver=$(apt_candidate "$kpkg")

# extract_vmlinux BZIMAGE OUT: the bzImage's payload (xz, zstd or gzip: the
# first stream with that magic) decompressed, if it is an ELF.
extract_vmlinux() {
	local magic tool off
	for pair in '\xFD7zXZ\x00:xz' '\x28\xB5\x2F\xFD:zstd' '\x1F\x8B\x08:gzip'; do
		magic=${pair%:*} tool=${pair##*:}
		command -v "$tool" >/dev/null || continue
		off=$(LC_ALL=C grep -obUaP "$magic" "$1" | head -n1 | cut -d: -f1)
		[ -n "$off" ] || continue
		tail -c +$((off + 1)) "$1" | "$tool" -dc 2>/dev/null > "$2.part" || true
		if [ "$(head -c 4 "$2.part" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
			mv "$2.part" "$2"
			return 0
		fi
	done
	rm -f "$2.part"
	echo "[lab] note: cannot decompress the vmlinux inside $1; nested guests boot the bzImage" >&2
}

key=$(printf '%s\n' "busybox-static=$bb_ver" "$kpkg=$kver" | sha256sum | cut -c1-12)
out=$cache/assets/$key
if [ -e "$out/.done" ]; then
	# (Assets fetched before vmlinux was part of them.)
	[ -e "$out/vmlinux" ] || [ -e "$out/.no-vmlinux" ] || { extract_vmlinux "$out/vmlinuz" "$out/vmlinux" || true; [ -e "$out/vmlinux" ] || touch "$out/.no-vmlinux"; }
	echo "ASSETS_DIR=$out"
	exit 0
fi
mkdir -p "$out"
tmp=$(mktemp -d "$cache/assets/dl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "[lab] downloading busybox-static $bb_ver and $kpkg $kver"
( cd "$tmp" && apt-get "${apt_opts[@]}" -qq download "busybox-static=$bb_ver" "$kpkg=$kver" >&2 ) \
	|| die "apt-get download failed"
mkdir "$tmp/x"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
cp "$tmp/x/bin/busybox" "$out/busybox"
cp "$tmp"/x/boot/vmlinuz-* "$out/vmlinuz"
extract_vmlinux "$out/vmlinuz" "$out/vmlinux" || true
[ -e "$out/vmlinux" ] || touch "$out/.no-vmlinux"
printf '%s\n' "busybox-static=$bb_ver" "$kpkg=$kver" > "$out/versions"
touch "$out/.done"
echo "ASSETS_DIR=$out"
