# SPDX-License-Identifier: GPL-2.0
# Sourced by build-lab-kernel.sh and build-tree-kernel.sh: the lab's
# kernel config, the per-source fix-ups and the build with its progress
# line. Needs $cache, say() and die().

# compat_fragment SRCDIR: config lines a source needs on top of the
# fragments, read from its own Kconfig (older kernels' dependencies differ).
compat_fragment() {
	local src=$1
	# Before 6.5, 9P_FS depends on INET.
	grep -qE '^\s*depends on INET && NET_9P' "$src/fs/9p/Kconfig" 2>/dev/null && echo CONFIG_INET=y
	# Options newer kernels split out, which allnoconfig would turn off:
	# KVM's in-kernel I/O APIC, PIC and PIT (KVM_CREATE_IRQCHIP, which the
	# VMM uses) and move_pages(2) (the migration drills).
	grep -qx 'config KVM_IOAPIC' "$src/arch/x86/kvm/Kconfig" 2>/dev/null && echo CONFIG_KVM_IOAPIC=y
	grep -qx 'config NUMA_MIGRATION' "$src/mm/Kconfig" 2>/dev/null && echo CONFIG_NUMA_MIGRATION=y
	# 7.3 folded PROC_SYSCTL into SYSCTL (now prompted under EXPERT).
	renamed_away "$src" | grep -qx CONFIG_PROC_SYSCTL && echo CONFIG_SYSCTL=y
	true
}

# renamed_away SRCDIR: symbols of the fragments this source no longer has
# (renamed or folded into another; compat_fragment sets the new one).
renamed_away() {
	local src=$1
	grep -qx 'config PROC_SYSCTL' "$src/fs/proc/Kconfig" "$src/kernel/Kconfig" 2>/dev/null ||
		{ grep -qx 'config SYSCTL' "$src/fs/proc/Kconfig" 2>/dev/null && echo CONFIG_PROC_SYSCTL; }
	true
}

# lab_configure SRCDIR OBJDIR LOG FRAGMENT...: writes OBJDIR/.config as
# `make allnoconfig` with the fragments (and the source's compat_fragment)
# as KCONFIG_ALLCONFIG: every symbol they do not name is off. Dies unless
# every =y/=m line of the fragments took.
lab_configure() {
	local src=$1 obj=$2 log=$3 all
	shift 3
	all=$obj/.lab-allno.config
	compat_fragment "$src" > "$obj/.lab-compat.config"
	[ -s "$obj/.lab-compat.config" ] && say "for this source also: $(grep -o '^CONFIG_[A-Z0-9_]*=.' "$obj/.lab-compat.config" | tr '\n' ' ')"
	# Lines for symbols the source renamed away are left out (and not
	# verified); the compat fragment names their successors.
	local gone
	gone=$(renamed_away "$src" | sed 's/^/^/; s/$/[= ]/' | paste -sd'|')
	cat "$@" "$obj/.lab-compat.config" | { if [ -n "$gone" ]; then grep -Ev "$gone"; else cat; fi; } > "$all"
	local o=()
	[ "$(realpath "$src")" = "$(realpath "$obj")" ] || o=(O="$obj")
	make -C "$src" "${o[@]}" -s allnoconfig KCONFIG_ALLCONFIG="$(realpath "$all")" >> "$log" 2>&1 ||
		{ tail -n 20 "$log" >&2; die "make allnoconfig failed in $src"; }
	verify_fragments "$obj/.config" "$all"
}

# expected_objects VERSION FLAVOUR: the objects a from-scratch build
# compiles, from the last finished from-scratch build of the same version
# and flavour (else of any), else a round guess.
expected_objects() {
	local d n=""
	for d in $(ls -td "$cache"/kernels/linux-"$1"-"$2"-*/ 2>/dev/null) $(ls -td "$cache"/kernels/*/ 2>/dev/null); do
		[ -e "$d/.done" ] || continue
		n=$(cat "$d/build-objects" 2>/dev/null || grep -c '^  CC' "$d/build.log" 2>/dev/null || true)
		[ "${n:-0}" -gt 300 ] && break
		n=""
	done
	echo "${n:-900}"
}

# progress DONE TOTAL ELAPSED: "N/TOTAL objects (P%), E s, ~L s left";
# TOTAL may be empty (an incremental build: no estimate).
progress() {
	local done=$1 total=$2 el=$3
	if [ -z "$total" ]; then
		say "$done objects compiled (incremental), ${el} s"
	elif [ "$done" -lt 50 ]; then
		say "$done/~$total objects, ${el} s"
	else
		[ "$done" -gt "$total" ] && total=$done
		say "$done/~$total objects ($(( 100 * done / total ))%), ${el} s, ~$(( el * (total - done) / done )) s left"
	fi
}

# make_with_progress LOG TOTAL START MAKE-ARGS...: runs make (output to
# LOG), printing progress every 10 s; dies with LOG's tail if make fails.
make_with_progress() {
	local log=$1 total=$2 start=$3 mk
	shift 3
	make "$@" >> "$log" 2>&1 &
	mk=$!
	trap 'kill $mk 2>/dev/null; exit 130' INT TERM
	while kill -0 $mk 2>/dev/null; do
		sleep 10
		kill -0 $mk 2>/dev/null || break
		progress "$(grep -c '^  CC' "$log" || true)" "$total" "$(( $(date +%s) - start ))"
	done
	if ! wait $mk; then
		echo "---- last lines of $log ----" >&2
		tail -n 40 "$log" >&2
		die "kernel build failed"
	fi
	trap - INT TERM
}

# verify_fragments CONFIG FRAGMENT...: dies unless every =y/=m line of the
# fragments is in CONFIG. A later fragment's line for the same symbol
# (`=y` or `# CONFIG_X is not set`) overrides an earlier one, as it does in
# KCONFIG_ALLCONFIG.
verify_fragments() {
	local config=$1 line missing=""
	shift
	while IFS= read -r line; do
		grep -qx "$line" "$config" || missing="$missing ${line}"
	done < <(cat "$@" | sed -nE 's/^(CONFIG_[A-Za-z0-9_]+)=(.*)$/\1 \2/p; s/^# (CONFIG_[A-Za-z0-9_]+) is not set$/\1 n/p' |
		awk '{ v[$1] = $2; if (!($1 in o)) { o[$1] = ++n; k[n] = $1 } } END { for (i = 1; i <= n; i++) if (v[k[i]] == "y" || v[k[i]] == "m") print k[i] "=" v[k[i]] }')
	[ -z "$missing" ] || die "config did not take:$missing"
}
