#!/usr/bin/env bash
# seed-base-images.sh makes sure the Docker engine has the base images the
# Dockerfile starts FROM, without a container registry if need be.
#
#   scripts/seed-base-images.sh [--force] [IMAGE...]
#
# IMAGE defaults to every FROM image of the Dockerfile. For each one the
# engine lacks, `docker pull` is tried first; when that fails (no registry
# reachable), a stand-in with the same name is made locally and loaded with
# `docker import`:
#
#   debian:bookworm-slim   a minbase Debian bookworm root from debootstrap
#                          (Debian's package mirror), slimmed the way the
#                          official image is (no docs, man pages, locales)
#   golang:X.Y-bookworm    the same root plus ca-certificates and this
#                          machine's Go toolchain (`go env GOROOT`, which must
#                          be Go X.Y) in /usr/local/go, with the official
#                          image's environment (GOPATH=/go, PATH, GOTOOLCHAIN=local),
#                          and this machine's local CA certificates
#                          (/usr/local/share/ca-certificates), if any, so that
#                          the Go module proxy is trusted as it is here
#
# --force makes the stand-ins even when the engine has the images.
#
# The engine is the docker CLI's: DOCKER_HOST and DOCKER_CONTEXT apply.
# Needs root (debootstrap), and installs debootstrap with apt-get if missing.
# Debootstrapped roots are cached as tarballs under WEFT_SEED_CACHE (default
# /var/cache/weft/seed) so that seeding another engine takes seconds; delete
# the directory to start afresh; seeders running at once take turns (a lock
# on its .lock file). Env: DEBIAN_MIRROR (default
# http://deb.debian.org/debian), DOCKER (CLI path, default docker),
# PULL_TIMEOUT (seconds, default 60).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
docker=${DOCKER:-docker}
cache=${WEFT_SEED_CACHE:-/var/cache/weft/seed}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
pull_timeout=${PULL_TIMEOUT:-60}

say() { echo "seed: $*" >&2; }
die() {
	say "$*"
	exit 1
}

force=0
case ${1:-} in
--force)
	force=1
	shift
	;;
-h | --help)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
images=("$@")
if ((${#images[@]} == 0)); then
	# FROM lines of the Dockerfile, minus references to its own stages.
	mapfile -t images < <(awk 'toupper($1) == "FROM" { print $2; if (toupper($3) == "AS") print "stage:" $4 }' "$root/Dockerfile" |
		awk '/^stage:/ { stages[substr($0, 7)] = 1; next } { imgs[++n] = $0 } END { for (i = 1; i <= n; i++) if (!(imgs[i] in stages)) print imgs[i] }' |
		awk '!seen[$0]++')
fi

# Work directories, removed on exit. A debootstrap that was interrupted can
# leave /proc, /sys or a bind-mounted /dev inside its root: unmount whatever
# is mounted below it, and never let rm cross into another file system.
workdirs=()
cleanup() {
	local d m
	for d in "${workdirs[@]}"; do
		[[ -d $d ]] || continue
		awk -v d="$d" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
		rm -rf --one-file-system "$d"
	done
}
trap cleanup EXIT
workdir() { # workdir NAME: sets $dir to a new work directory in the cache
	mkdir -p "$cache"
	dir=$(mktemp -d "$cache/$1.work.XXXXXX")
	workdirs+=("$dir")
}

# debootstrap_root NAME [debootstrap option...]: sets $tarball to a cached
# tarball of a slimmed minbase bookworm root, made if missing.
debootstrap_root() {
	local name=$1 dir
	shift
	tarball=$cache/$name.tar
	[[ -s $tarball ]] && return
	[[ $(id -u) == 0 ]] || die "debootstrap needs root"
	if ! command -v debootstrap >/dev/null; then
		say "installing debootstrap"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
	fi
	mkdir -p "$cache/debs"
	workdir "$name"
	say "debootstrap $name (bookworm, minbase${*:+ $*}) from $mirror; log in $cache/$name.log"
	debootstrap --variant=minbase "$@" --cache-dir="$cache/debs" bookworm "$dir" "$mirror" >"$cache/$name.log" 2>&1 ||
		die "debootstrap failed; see $cache/$name.log"
	slim "$dir"
	tar --numeric-owner --one-file-system -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
	say "$name: $(du -sh "$tarball" | cut -f1) (cached in $tarball)"
}

# slim drops what the official slim image drops, and keeps it dropped for
# later apt-get installs (dpkg path-exclude), like the official image does.
slim() {
	local dir=$1
	mkdir -p "$dir/etc/dpkg/dpkg.cfg.d"
	cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
	cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	echo 'Acquire::Languages "none";' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
	# The official image's sources (deb822), instead of debootstrap's one line.
	rm -f "$dir/etc/apt/sources.list"
	cat >"$dir/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
	find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "$dir"/usr/share/{info,man,locale,linda,lintian}/* \
		"$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/var/cache/debconf/*-old \
		"$dir"/var/log/* "$dir"/tmp/* "$dir"/root/.bash_history
	: >"$dir/etc/machine-id"
	echo localhost >"$dir/etc/hostname"
	# resolv.conf and hosts are bind-mounted by Docker.
	: >"$dir/etc/resolv.conf"
}

import() { # import TARBALL IMAGE [docker import -c ...]
	local tarball=$1 image=$2
	shift 2
	"$docker" import "$@" -m "weft seed: stand-in for $image (debootstrap)" "$tarball" "$image" >/dev/null
	say "imported $image ($("$docker" image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

seed_debian() { # seed_debian IMAGE
	debootstrap_root bookworm-minbase
	import "$tarball" "$1" -c 'CMD ["bash"]'
}

seed_golang() { # seed_golang IMAGE (golang:X.Y-bookworm)
	local image=$1 want goroot have gotar dir
	want=${image#golang:}
	want=${want%%-*}
	command -v go >/dev/null || die "$image: no go on this machine to copy into the image"
	goroot=$(go env GOROOT)
	have=$(go env GOVERSION) # go1.26.8
	have=${have#go}
	[[ $have == "$want" || $have == "$want".* ]] ||
		die "$image: this machine's Go is $have, not $want; install Go $want or pull the real image"
	gotar=$cache/golang-$have-bookworm.tar
	if [[ ! -s $gotar ]]; then
		debootstrap_root bookworm-minbase-ca --include=ca-certificates,netbase
		workdir golang
		tar -C "$dir" -xf "$tarball"
		mkdir -p "$dir/usr/local/go" "$dir/go/bin" "$dir/go/src"
		chmod 1777 "$dir/go"
		# The toolchain without its own test suite, which the build does
		# not need.
		tar -C "$goroot" --exclude=./test -c . | tar -C "$dir/usr/local/go" -x
		# This machine's own CA certificates (a TLS-intercepting proxy it
		# trusts), so that `go mod download` in the build trusts what the
		# machine's own go trusts.
		if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
			cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
			cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
		fi
		tar --numeric-owner -C "$dir" -cf "$gotar.tmp" . && mv "$gotar.tmp" "$gotar"
	fi
	import "$gotar" "$image" \
		-c "ENV GOLANG_VERSION=$have" -c 'ENV GOTOOLCHAIN=local' -c 'ENV GOPATH=/go' \
		-c 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		-c 'WORKDIR /go' -c 'CMD ["bash"]'
}

"$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset})"
for image in "${images[@]}"; do
	if ((!force)); then
		if "$docker" image inspect "$image" >/dev/null 2>&1; then
			say "$image: present"
			continue
		fi
		say "$image: pulling"
		if timeout "$pull_timeout" "$docker" pull -q "$image" >/dev/null 2>&1; then
			say "$image: pulled"
			continue
		fi
		say "$image: cannot pull it; making a local stand-in"
	fi
	# One seeder at a time writes the cache (two test runs may build the
	# plugin at once); the second finds the tarballs made.
	if [[ -z ${seed_locked:-} ]]; then
		mkdir -p "$cache"
		exec 8>"$cache/.lock"
		flock 8
		seed_locked=1
	fi
	case $image in
	debian:bookworm-slim) seed_debian "$image" ;;
	golang:*-bookworm) seed_golang "$image" ;;
	*) die "$image: no recipe for a local stand-in; pull it from a registry" ;;
	esac
done
