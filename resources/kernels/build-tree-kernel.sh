#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build (or rebuild incrementally) a lab kernel from a developer's own
# Linux source tree, out of tree: `make O=` into the cache; the tree itself
# is never written.
#
#   build-tree-kernel.sh --cache DIR --tree SRC [--flavour default|debug] [--jobs N]
#
# The lab's own config (allnoconfig + base.config + lab.config, as for the
# Debian kernels), so a tree builds as small a kernel as the default lab.
# The build folder DIR/kernels/tree-NAME-FLAVOUR-KEY/ is keyed by the
# tree's path, the flavour and the fragments, and is kept across changes to
# the tree, so that a changed tree rebuilds incrementally. Its `state` file
# names the sources it was built from: for a git tree HEAD plus a hash of
# the uncommitted changes (`git diff HEAD` and the untracked files'
# contents), for a plain tree (or a git one without a commit) a hash of
# every file's path, size and mtime.
# Same state: the cached build is used as is. Layout as build-lab-kernel.sh
# (bzImage, modules/*.ko, src/ = the O= build folder, usable as KDIR).
# The last line on stdout is "KERNEL_DIR=<path>".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
flavour=default
cache=""
tree=""
jobs=$(( $(nproc) + 1 ))

die() { echo "build-tree-kernel: $*" >&2; exit 1; }
say() { echo "[lab kernel] $*"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--tree) tree=${2:?}; shift 2 ;;
	--flavour) flavour=${2:?}; shift 2 ;;
	--cache) cache=${2:?}; shift 2 ;;
	--jobs) jobs=${2:?}; shift 2 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
[ -n "$cache" ] && [ -n "$tree" ] || die "usage: build-tree-kernel.sh --cache DIR --tree SRC"
case "$flavour" in default|debug) ;; *) die "unknown flavour '$flavour' (default, debug)" ;; esac
[ -d "$tree" ] || die "--tree $tree: no such folder"
tree=$(realpath "$tree")
for tool in make gcc flex bison bc sha256sum flock find; do
	command -v "$tool" >/dev/null || die "'$tool' is missing: apt-get install build-essential flex bison bc libelf-dev libssl-dev"
done

# What tree is it?
mkvar() { sed -n "s/^$1 = *//p" "$tree/Makefile" 2>/dev/null | head -n1 || true; }
major=$(mkvar VERSION) minor=$(mkvar PATCHLEVEL)
[[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] && [ -d "$tree/arch/x86" ] && [ -d "$tree/mm" ] ||
	die "$tree is not a Linux source tree (no top-level Makefile with VERSION and PATCHLEVEL, or no arch/x86, mm/)"
release="$major.$minor.$(mkvar SUBLEVEL)$(mkvar EXTRAVERSION)"
if [ "$major" -lt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -lt 1 ]; }; then
	die "$tree is Linux $release: the lab supports 6.1 and newer"
fi
grep -qs 'make_device_exclusive' "$tree/include/linux/rmap.h" ||
	die "$tree (Linux $release) has no make_device_exclusive() in include/linux/rmap.h: nothing for the drills to test"
if [ -e "$tree/.config" ] || [ -d "$tree/include/config" ]; then
	die "$tree has an in-tree build (.config): the lab builds out of tree and never writes the tree; run 'make mrproper' there or use a clean worktree"
fi

# Which sources, exactly?
git_top=$(git -c safe.directory='*' -C "$tree" rev-parse --show-toplevel 2>/dev/null || true)
head=""
[ "$git_top" = "$tree" ] && head=$(git -c safe.directory='*' -C "$tree" rev-parse -q --verify HEAD 2>/dev/null || true)
if [ -n "$head" ]; then
	dirty=$(cd "$tree" && export GIT_OPTIONAL_LOCKS=0 && {
		git -c safe.directory='*' diff HEAD --binary
		git -c safe.directory='*' ls-files -o --exclude-standard -z | xargs -0r sha256sum
	} | sha256sum | cut -c1-16)
	state="git $head uncommitted=$dirty"
else
	state="files $(cd "$tree" && find . -path ./.git -prune -o -type f -printf '%P %s %T@\n' | LC_ALL=C sort | sha256sum | cut -c1-16)"
fi

mkdir -p "$cache/kernels"
# shellcheck source=build-progress.sh
. "$here/build-progress.sh"
recipe=4
fragments=("$here/base.config" "$here/lab.config")
[ "$flavour" = debug ] && fragments+=("$here/debug.config")
key=$({ echo "recipe=$recipe tree=$tree $flavour"; cat "${fragments[@]}"; } | sha256sum | cut -c1-12)
out=$cache/kernels/tree-$(basename "$tree")-$flavour-$key
mkdir -p "$out"
exec 8>"$out/.lock"
flock 8
if [ -e "$out/.done" ] && [ "$(cat "$out/state" 2>/dev/null)" = "$state" ]; then
	say "cached: $out (Linux $release, $state)"
	echo "KERNEL_DIR=$out"
	exit 0
fi
rm -f "$out/.done"
obj=$out/src
log=$out/build.log
: > "$log"
start=$(date +%s)
total=""
if [ ! -e "$out/.configured" ]; then
	say "configuring $tree (Linux $release) out of tree: allnoconfig + $(for f in "${fragments[@]}"; do basename "$f"; done | tr '\n' ' ')"
	rm -rf "$obj" "$out/modules"
	mkdir -p "$obj"
	lab_configure "$tree" "$obj" "$log" "${fragments[@]}"
	touch "$out/.configured"
	total=$(expected_objects "$major.$minor" "$flavour")
	say "building Linux $release from scratch with -j$jobs (log: $log)"
else
	say "rebuilding incrementally (was: $(cat "$out/state" 2>/dev/null || echo unfinished); now: $state) with -j$jobs (log: $log)"
	make -C "$tree" O="$obj" -s olddefconfig >> "$log" 2>&1
fi
make_with_progress "$log" "$total" "$start" -C "$tree" O="$obj" -j"$jobs" bzImage modules
cp "$obj/arch/x86/boot/bzImage" "$out/bzImage"
rm -rf "$out/modules"
mkdir -p "$out/modules"
find "$obj" -name '*.ko' -exec cp {} "$out/modules/" \;
secs=$(( $(date +%s) - start ))
echo "$secs" > "$out/build-seconds"
[ -n "$total" ] && { grep -c '^  CC' "$log" > "$out/build-objects" || true; }
printf '%s\n' "tree=$tree" "release=$release" "$flavour" > "$out/inputs"
echo "$state" > "$out/state"
touch "$out/.done"
say "built in ${secs}s ($(grep -c '^  CC' "$log" || true) objects compiled): $out"
echo "KERNEL_DIR=$out"
