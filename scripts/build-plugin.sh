#!/usr/bin/env bash
# build-plugin.sh builds weft's managed plugin: binary → root filesystem
# (the Dockerfile) → `docker plugin create` with config.json.
#
#   scripts/build-plugin.sh [--binary PATH] [--version V] [--push] [NAME[:TAG]]
#
# NAME:TAG defaults to weftnet/weft:dev; the tag defaults to latest when only
# a name is given (Docker's rule). That full name is also the driver name:
# `docker network create -d weftnet/weft:dev --ipam-driver weftnet/weft:dev`.
# The plugin is created disabled; to use it:
#
#   docker plugin enable weftnet/weft:dev  # state: Docker's directory for it
#
# An existing, disabled plugin of the same name is replaced; an enabled one
# is left alone (disable it first, or choose another tag).
#
#   --binary PATH  put this weft binary (built with CGO_ENABLED=0) into the
#                  root filesystem instead of compiling one in the
#                  Dockerfile's build stage (only its runtime stage is built)
#   --version V    version compiled in (weft version; default: git describe)
#   --push         docker plugin push NAME:TAG afterwards (NAME must then
#                  start with the registry, e.g. 127.0.0.1:5000/weft:dev)
#
# The engine is the docker CLI's (DOCKER_HOST applies), so the root
# filesystem can be built by one engine and the plugin pushed from it and
# installed into others. Base images the engine lacks are pulled, or, when
# no registry is reachable, made locally by scripts/seed-base-images.sh. The
# build runs with --network host (apt-get and the Go module proxy from the
# engine's own network). Env: DOCKER (CLI path, default docker), KEEP_DIR=1
# keeps the plugin directory (rootfs + config.json) and prints its path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
docker=${DOCKER:-docker}
rootfs_image=weft-plugin-rootfs:latest

say() { echo "build-plugin: $*" >&2; }
die() {
	say "$*"
	exit 1
}
usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

binary= version= push=0 name=
while (($#)); do
	case $1 in
	--binary) binary=${2:?--binary needs a path}; shift 2 ;;
	--version) version=${2:?--version needs a value}; shift 2 ;;
	--push) push=1; shift ;;
	-h | --help) usage ;;
	-*) say "unknown option $1"; usage ;;
	*) [[ -z $name ]] || usage; name=$1; shift ;;
	esac
done
name=${name:-weftnet/weft:dev}
# A tag is what follows the last colon after the last slash.
last=${name##*/}
[[ $last == *:* ]] || name=$name:latest
if [[ -z $version ]]; then
	version=$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)
fi

start=$SECONDS
"$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
	die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}); start dockerd or set DOCKER_HOST"

# An existing plugin: replace it if disabled, refuse if enabled.
if enabled=$("$docker" plugin inspect -f '{{.Enabled}}' "$name" 2>/dev/null); then
	[[ $enabled == false ]] ||
		die "plugin $name exists and is enabled; disable it (docker plugin disable $name) or choose another tag"
	say "replacing the disabled plugin $name"
	"$docker" plugin rm "$name" >/dev/null
fi

build_args=(build --network host --build-arg "VERSION=$version" -t "$rootfs_image")
if [[ -n $binary ]]; then
	[[ -f $binary && -x $binary ]] || die "--binary $binary: not an executable file"
	if ldd "$binary" >/dev/null 2>&1; then
		die "--binary $binary is dynamically linked; build it with CGO_ENABLED=0 go build"
	fi
	"$here/seed-base-images.sh" debian:bookworm-slim
	build_args+=(--target runtime)
else
	"$here/seed-base-images.sh"
fi

say "building the root filesystem (docker build${binary:+ --target runtime}, version $version)"
log=$(mktemp)
dir=$(mktemp -d)
cid=
cleanup() {
	[[ -z $cid ]] || "$docker" rm -f "$cid" >/dev/null 2>&1 || true
	rm -f "$log"
	if [[ ${KEEP_DIR:-} == 1 ]]; then
		say "plugin directory kept: $dir"
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
if ! "$docker" "${build_args[@]}" "$root" >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	die "docker build failed"
fi

mkdir -p "$dir/rootfs"
# (stderr: the engine's warnings about a container that never runs)
cid=$("$docker" create "$rootfs_image" /usr/bin/weft version 2>"$log") || {
	cat "$log" >&2
	die "docker create failed"
}
"$docker" export "$cid" | tar -x -C "$dir/rootfs"
"$docker" rm "$cid" >/dev/null
cid=
if [[ -n $binary ]]; then
	install -m 0755 "$binary" "$dir/rootfs/usr/bin/weft"
fi
[[ -x $dir/rootfs/usr/bin/weft ]] || die "the root filesystem has no /usr/bin/weft"
cp "$root/config.json" "$dir/config.json"
"$docker" plugin create "$name" "$dir" >/dev/null

size=$(du -sb "$dir/rootfs" | cut -f1)
say "created plugin $name (disabled); root filesystem $((size / 1000000)) MB ($size bytes); $((SECONDS - start)) s"
if ((push)); then
	say "pushing $name"
	"$docker" plugin push "$name" >&2
fi
echo "$name"
