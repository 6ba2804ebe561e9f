#!/usr/bin/env bash
# The tests: the lint gate (rustfmt, clippy), unit and integration tests on
# this host's /dev/kvm, then the lab tests (Linux test guests, the helper
# module, drills on the built and on Debian's prebuilt kernels, and the kill
# matrix of known-bad kernels) inside QEMU. MMUVISOR_LAB_TESTS=0 skips the
# lab part.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MMUVISOR_LAB_TESTS=${MMUVISOR_LAB_TESTS:-1}
cargo fmt --all -- --check
cargo clippy --release --quiet --workspace --all-targets -- -D warnings
cargo build --release --quiet
cargo test --release --workspace -- --test-threads=1
