#!/usr/bin/env bash
# mkimage.sh builds weft's test image — a busybox-static root, no registry
# needed — and imports it into a Docker engine with `docker import`.
#
#   test/image/mkimage.sh [-H unix:///path/docker.sock] [TAG]
#
# TAG defaults to weft-e2e/busybox:latest. -H is passed to the docker CLI
# (default: the CLI's own default engine). Env: BUSYBOX (path of a static
# busybox binary, default /bin/busybox), DOCKER (CLI path, default docker).
# The image has /bin/busybox and the applets the tests use, /etc/passwd and
# /etc/group, and CMD ["sh"]. Re-importing replaces the tag; nothing else is
# touched.
set -euo pipefail

docker_args=()
if [[ ${1:-} == -H ]]; then
	docker_args=(-H "$2")
	shift 2
fi
tag=${1:-weft-e2e/busybox:latest}
busybox=${BUSYBOX:-/bin/busybox}
docker=${DOCKER:-docker}

if [[ ! -x $busybox ]]; then
	echo "mkimage: $busybox not found: apt-get install -y busybox-static" >&2
	exit 1
fi
# A dynamically linked busybox (Debian's "busybox" package) would not run in
# an image without libc.
if ldd "$busybox" >/dev/null 2>&1; then
	echo "mkimage: $busybox is dynamically linked: apt-get install -y busybox-static" >&2
	exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
applets=(sh ash ping ping6 ip ifconfig route nslookup wget nc httpd sleep cat true false
	hostname echo ls ps grep sed awk seq kill timeout wc head tail tr cut sort uniq env
	date mkdir rm id printf test "[" arp)
for a in "${applets[@]}"; do
	ln -s busybox "$root/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
	"$docker" "${docker_args[@]}" import -c 'CMD ["sh"]' -m 'weft test image (busybox-static)' - "$tag" >/dev/null
echo "mkimage: imported $tag"
