#!/usr/bin/env bash
# The main job: set up, build, and run every drill in the lab (a QEMU VM with
# the project's own kernel, KVM inside and the helper module loaded).
# Extra arguments go to `mmuvisor drill` (e.g. exclusive-basic --format json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
exec target/release/mmuvisor lab run -- mmuvisor drill "${@:-all}"
