#!/usr/bin/env bash
# engine-debian13.sh unpacks Debian 13 (trixie)'s Docker engine — the
# docker.io and containerd packages — into a directory, without installing
# anything: the machine's engine, its packages and its apt configuration are
# left alone. It prints the directory (on stdout; progress goes to stderr).
#
#   scripts/engine-debian13.sh DIR
#
# DIR gets DIR/usr/sbin/dockerd, docker-proxy, DIR/usr/bin/containerd,
# containerd-shim-runc-v2 (and whatever else the two packages hold). To run
# the end-to-end suite on that engine (scripts/test.sh does):
#
#   dir=$(scripts/engine-debian13.sh /tmp/engine-debian13)
#   cd test/e2e && WEFT_E2E_DOCKERD=$dir/usr/sbin/dockerd \
#       PATH=$dir/usr/sbin:$dir/usr/bin:$PATH WEFT_E2E_PREFIX=weft-e2e26 \
#       go test -tags e2e -count=1 -v -timeout 40m ./...
#
# (dockerd finds containerd, containerd-shim-runc-v2 and docker-proxy on
# PATH.) runc is not taken from trixie: its runc needs glibc 2.38, and
# Debian 12's (runc 1.1) serves the trixie engine.
#
# How: apt-get with a private configuration — its own sources list (trixie
# main, signed-by Debian's archive keyring, which has the trixie keys), its
# own lists, state and cache directories under DIR/.apt (removed at the end)
# — runs `update`, asks for the candidate versions and `download`s the .debs
# into a cache keyed by file name (= package, version and architecture),
# WEFT_ENGINE_CACHE (default /var/cache/weft-test/debian13), so a rerun
# downloads nothing unless trixie has a newer version. If the package index
# cannot be fetched (no mirror reachable) the newest cached pair is used.
# Then `dpkg-deb -x` unpacks them into DIR (emptied first).
#
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), WEFT_ENGINE_CACHE.
set -euo pipefail

say() { echo "engine-debian13: $*" >&2; }
die() {
	say "$*"
	exit 1
}

[[ $# == 1 && $1 != -* ]] || {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
dir=$(realpath -m "$1")
[[ $dir != / ]] || die "refusing to unpack into /"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${WEFT_ENGINE_CACHE:-/var/cache/weft-test/debian13}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
packages=(docker.io containerd)
arch=$(dpkg --print-architecture)

for tool in apt-get apt-cache dpkg-deb flock; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -r $keyring ]] || die "$keyring not found (apt-get install debian-archive-keyring)"

mkdir -p "$dir" "$cache"
apt=$dir/.apt
rm -rf "$apt"
mkdir -p "$apt"/{lists/partial,cache/archives/partial,parts,prefs}
trap 'rm -rf "$apt"' EXIT
: >"$apt/status"
echo "deb [signed-by=$keyring] $mirror trixie main" >"$apt/sources.list"
# Everything apt reads or writes is the private one, except apt.conf.d
# (proxy settings and the like still apply).
aptopts=(
	-o "Dir::Etc::sourcelist=$apt/sources.list"
	-o "Dir::Etc::sourceparts=$apt/parts"
	-o "Dir::Etc::preferences=$apt/prefs/none"
	-o "Dir::Etc::preferencesparts=$apt/prefs"
	-o "Dir::State=$apt"
	-o "Dir::State::lists=$apt/lists"
	-o "Dir::State::status=$apt/status"
	-o "Dir::Cache=$apt/cache"
	-o "Dir::Cache::archives=$apt/cache/archives"
	-o "APT::Architecture=$arch"
	-o "Acquire::Languages=none"
)

# One download into the cache at a time (two test runs may start together).
exec 9>"$cache/.lock"
flock 9

debs=()
if apt-get "${aptopts[@]}" -qq update >"$apt/update.log" 2>&1; then
	for p in "${packages[@]}"; do
		v=$(apt-cache "${aptopts[@]}" show --no-all-versions "$p" 2>/dev/null | sed -n 's/^Version: //p' | head -1)
		[[ -n $v ]] || die "trixie has no $p for $arch"
		# apt-get download's file name: the epoch's colon is written %3a.
		f=$cache/${p}_${v//:/%3a}_$arch.deb
		if [[ ! -s $f ]]; then
			say "downloading $p $v from trixie"
			(cd "$apt/cache/archives/partial" && apt-get "${aptopts[@]}" -qq download "$p=$v" >&2) ||
				die "apt-get download $p=$v failed"
			mv "$apt/cache/archives/partial/$(basename "$f")" "$f"
		else
			say "$p $v: cached in $f"
		fi
		debs+=("$f")
	done
else
	sed 's/^/    /' "$apt/update.log" >&2
	say "could not fetch trixie's package index; looking for cached packages"
	for p in "${packages[@]}"; do
		f=$(ls -1 "$cache/${p}_"*"_$arch.deb" 2>/dev/null | sort -V | tail -1 || true)
		[[ -n $f ]] || die "no cached $p in $cache, and trixie's index cannot be fetched"
		say "using the cached $(basename "$f")"
		debs+=("$f")
	done
fi
flock -u 9

# Unpack into an emptied DIR (only what a previous unpack left: the package
# trees and the private apt directory).
find "$dir" -mindepth 1 -maxdepth 1 ! -name .apt -exec rm -rf {} +
for f in "${debs[@]}"; do
	dpkg-deb -x "$f" "$dir"
done
[[ -x $dir/usr/sbin/dockerd ]] || die "no usr/sbin/dockerd in $dir"
[[ -x $dir/usr/bin/containerd ]] || die "no usr/bin/containerd in $dir"
say "dockerd $("$dir/usr/sbin/dockerd" --version | sed 's/^Docker version //'), containerd $("$dir/usr/bin/containerd" --version | awk '{print $3}') in $dir"
echo "$dir"
