#!/usr/bin/env bash
# The main job: set up, build, and run every drill in the lab (a QEMU VM with
# KVM inside and the helper module loaded) on Debian's own prebuilt 7.2
# kernel (sid's linux-image-amd64): nothing to compile but mmuvisor and the
# helper module. `--build` first runs them on the lab kernel the project
# compiles from Debian's source instead (minutes on a fresh machine).
# Other arguments go to `mmuvisor drill` (e.g. exclusive-basic --format json).
#
# What the first verdict needs starts at once: the Rust build runs while apt
# installs the tools, then the kernel is fetched (or built) alongside it.
# `lab run` then finds it in the cache (the same script and key) and fetches
# the lab's other assets.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "drills.sh: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
cache=${MMUVISOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmuvisor}
kernel=(--stock)
prepare=(resources/kernels/fetch-stock-kernel.sh)
if [ "${1:-}" = --build ]; then
	shift
	kernel=()
	prepare=(resources/kernels/build-lab-kernel.sh)
fi
cargo build --release --quiet &
cargo_pid=$!
bash scripts/setup.sh
bash "${prepare[@]}" --cache "$cache" >&2 &
kernel_pid=$!
wait "$cargo_pid" || { echo "drills.sh: cargo build failed" >&2; exit 1; }
wait "$kernel_pid" || { echo "drills.sh: the lab kernel is not ready (see above)" >&2; exit 1; }
# Two lab CPUs: a vCPU inside a fault and a converter can both be in the
# kernel (under TCG they take turns on one host thread, switching anywhere).
exec target/release/mmuvisor lab run "${kernel[@]}" --cpus 2 -- mmuvisor drill "${@:-all}"
