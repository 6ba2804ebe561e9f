#!/usr/bin/env bash
# Installs what mmuvisor and its lab need on a fresh Debian machine (root):
# the kernel build tools, QEMU, and checks for a Rust toolchain and /dev/kvm.
# Sourced by drills.sh and test.sh; safe to run again.
set -euo pipefail
need=()
for pair in make:make gcc:gcc flex:flex bison:bison bc:bc xz:xz-utils patch:patch \
	qemu-system-x86_64:qemu-system-x86 dpkg-deb:dpkg ldd:libc-bin objdump:binutils; do
	command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ -e /usr/include/libelf.h ] || need+=(libelf-dev)
[ -e /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
if [ ${#need[@]} -gt 0 ]; then
	echo "[setup] installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "[setup] cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
if [ ! -e /dev/kvm ]; then
	echo "[setup] note: no /dev/kvm here; host tests that need it will be skipped (the lab has its own)"
fi
