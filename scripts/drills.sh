#!/usr/bin/env bash
# The main job: set up, build, and run every drill in the lab (a QEMU VM with
# the project's own kernel, KVM inside and the helper module loaded).
# Extra arguments go to `mmuvisor drill` (e.g. exclusive-basic --format json).
#
# What the first verdict needs starts at once: the Rust build runs while apt
# installs the kernel build tools, then the lab kernel builds (download,
# unpack, compile) alongside it. `lab run` then finds the kernel in the
# cache (the same build script and key) and fetches its other assets.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "drills.sh: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
cache=${MMUVISOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmuvisor}
cargo build --release --quiet &
cargo_pid=$!
bash scripts/setup.sh
bash resources/kernels/build-lab-kernel.sh --cache "$cache" >&2 &
kernel_pid=$!
wait "$cargo_pid" || { echo "drills.sh: cargo build failed" >&2; exit 1; }
wait "$kernel_pid" || { echo "drills.sh: the lab kernel did not build (see above)" >&2; exit 1; }
# Two lab CPUs: a vCPU inside a fault and a converter can both be in the
# kernel (under TCG they take turns on one host thread, switching anywhere).
exec target/release/mmuvisor lab run --cpus 2 -- mmuvisor drill "${@:-all}"
