# SPDX-License-Identifier: GPL-2.0
# Sourced by the lab scripts: apt with a private sources list and state under
# "$cache/apt", so the machine's own apt configuration is never touched.
# Needs $cache; defines apt_opts and apt_private_update.

mkdir -p "$cache"/apt/{lists/partial,cache/archives/partial,sources}
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$cache/apt/sources"
	-o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache"
	-o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=/dev/null"
	-o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")

# Writes the private sources (sid, trixie, bookworm, experimental from the machine's own
# Debian mirror) and refreshes the lists when they are older than 6 hours.
apt_private_update() {
	local uri=http://deb.debian.org/debian keyring=/usr/share/keyrings/debian-archive-keyring.gpg own
	own=$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 | awk '{print $2}' || true)
	[ -n "$own" ] && uri=$own
	(
		flock 9
		cat > "$cache/apt/sources/lab.sources" <<-EOS
		Types: deb
		URIs: $uri
		Suites: sid trixie bookworm
		Components: main
		Signed-By: $keyring
		EOS
		# experimental (the newest kernels): apt never prefers it for a
		# package that sid has too (NotAutomatic), only where it alone has it.
		cat > "$cache/apt/sources/lab-experimental.sources" <<-EOS
		Types: deb
		URIs: $uri
		Suites: experimental
		Components: main
		Signed-By: $keyring
		EOS
		local age=$(( $(date +%s) - $(stat -c %Y "$cache/apt/lists/.updated" 2>/dev/null || echo 0) ))
		ls "$cache"/apt/lists/*_dists_experimental_main_binary-amd64_Packages* >/dev/null 2>&1 || age=$(( age + 21600 ))
		if [ "$age" -gt 21600 ]; then
			echo "[lab] updating private package lists (sid, trixie, bookworm, experimental)"
			apt-get "${apt_opts[@]}" -qq update >&2 || { echo "apt-get update failed (private lists in $cache/apt)" >&2; exit 1; }
			touch "$cache/apt/lists/.updated"
		fi
	) 9>"$cache/apt/.lock"
}

# apt_memo KEY CMD...: CMD's output, remembered until the lists change
# (apt-cache over three suites' lists takes seconds per query).
apt_memo() {
	local key=$1 file="$cache/apt/memo/$1"
	shift
	if [ -s "$file" ] && [ "$file" -nt "$cache/apt/lists/.updated" ]; then
		cat "$file"
		return
	fi
	mkdir -p "$cache/apt/memo"
	"$@" > "$file.tmp" && mv "$file.tmp" "$file" && cat "$file"
}

# apt_candidate PKG [SUITE]: the version apt would fetch (from SUITE if given).
apt_candidate() {
	apt_memo "candidate-$1-${2:-any}" apt_candidate_query "$@"
}
apt_candidate_query() {
	if [ -n "${2:-}" ]; then
		apt-cache "${apt_opts[@]}" madison "$1" 2>/dev/null | awk -F'|' -v s="$2" '$3 ~ " "s"/" {gsub(/ /,"",$2); print $2; exit}'
	else
		apt-cache "${apt_opts[@]}" policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'
	fi
}

# apt_kernel_versions: the linux-source-V versions the private lists know,
# newest first (for error messages and `lab kernel --list`).
apt_kernel_versions() {
	apt-cache "${apt_opts[@]}" pkgnames linux-source- 2>/dev/null | sed -n 's/^linux-source-\([0-9][0-9]*\.[0-9][0-9]*\)$/\1/p' | sort -rV | paste -sd' '
}
