#!/usr/bin/env bash
# scripts/bench.sh — weft against Docker's built-in drivers on this machine,
# side by side in one run, interleaved, reported as ratios with their spread.
#
#   scripts/bench.sh                  # full run (40 minutes or more; the page
#                                     # gives each section's time): rewrites
#                                     # docs/benchmarks.md and docs/img/*.svg
#   scripts/bench.sh --quick          # smoke run (few iterations, ~4 minutes);
#                                     # writes to /tmp/weft-bench-quick
#   scripts/bench.sh --only attach,plugin [--out DIR]
#                                     # some sections (attach, plugin, dataplane,
#                                     # multihost, netcreate, footprint); writes
#                                     # to /tmp/weft-bench-partial unless --out
#                                     # (multihost: weft vxlan, and weft's
#                                     # swarm install vs Docker's overlay
#                                     # in a swarm, vs the underlay, across
#                                     # two docker hosts)
#   scripts/bench.sh --networks N     # netcreate with N networks of each driver
#                                     # (default 1000; --quick: 20)
#
# As root on Debian 12. It installs what it needs with apt-get (docker.io,
# iperf3, linux-perf, ... — only what is missing, starting no service), builds
# weft and the harness (test/bench, build tag bench) and runs it. The harness
# starts its own dockerd and weft in network namespaces named weft-bench-*
# (never the machine's engine, never the e2e suite's weft-e2e*), sends
# traffic only between namespaces it made, and removes everything at the end.
# The raw samples are kept in /tmp/weft-bench-results[-quick|-partial].json;
# re-render the page from them with: go run -tags bench ./test/bench render
# -raw FILE -out docs (add -merge PARTIAL.json to replace some sections).
#
# Exit status: non-zero if the harness could not measure (a section failed);
# a missed performance goal is reported in the page, not as a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
quick=0
only=""
out=""
networks=""
while (($#)); do
	case $1 in
	--quick) quick=1 ;;
	--only)
		only=${2:?--only needs a comma-separated list of sections}
		shift
		;;
	--out)
		out=${2:?--out needs a directory}
		shift
		;;
	--networks)
		networks=${2:?--networks needs a number}
		[[ $networks =~ ^[0-9]+$ ]] || {
			echo "bench.sh: --networks $networks: not a number" >&2
			exit 2
		}
		shift
		;;
	-h | --help)
		sed -n '2,32p' "$0"
		exit 0
		;;
	*)
		echo "bench.sh: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
if [[ -z $out ]]; then
	if ((quick)); then
		out=/tmp/weft-bench-quick
	elif [[ -n $only ]]; then
		out=/tmp/weft-bench-partial
	else
		out=docs
	fi
fi

if [[ $(id -u) != 0 ]]; then
	echo "bench.sh: run as root (the harness creates network namespaces and starts dockerd)" >&2
	exit 1
fi

work=$(mktemp -d /tmp/weft-bench-build.XXXXXX)
policy_rc_created=0
cleanup() {
	if [[ $policy_rc_created == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
	rm -rf "$work"
}
trap cleanup EXIT

# docker.io: dockerd (+ containerd, runc); busybox-static: the image;
# iperf3: throughput; linux-perf: the profiles; strace: iptables processes
# per network create; ipset: the repair-after-flush measurement; etcd-server:
# the store of the multihost section's wefts; the rest: ip, nsenter,
# unshare, iptables-save, iptables-nft/-legacy.
packages=(docker.io iptables busybox-static iproute2 util-linux iperf3 linux-perf strace ipset etcd-server)
missing=()
for p in "${packages[@]}"; do
	if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	echo "bench.sh: installing ${missing[*]}"
	# No service may start because a package was installed (policy-rc.d).
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		policy_rc_created=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$work/apt.log" 2>&1; then
		cat "$work/apt.log"
		echo "bench.sh: apt-get install failed" >&2
		exit 1
	fi
	if [[ $policy_rc_created == 1 ]]; then
		rm -f /usr/sbin/policy-rc.d
		policy_rc_created=0
	fi
fi
command -v go >/dev/null || {
	echo "bench.sh: go is not installed" >&2
	exit 1
}

version=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo dev)
# Static (no cgo): the multihost section also puts this binary into the
# managed plugin (scripts/build-plugin.sh --binary refuses a dynamic one).
CGO_ENABLED=0 go build -ldflags "-X main.version=$version" -o "$work/weft" .
go build -tags bench -o "$work/weft-bench" ./test/bench

args=(run -weft "$work/weft" -repo . -out "$out")
if ((quick)); then args+=(-quick); fi
if [[ -n $only ]]; then args+=(-only "$only"); fi
if [[ -n $networks ]]; then args+=(-networks "$networks"); fi
status=0
"$work/weft-bench" "${args[@]}" || status=$?

if [[ -f $out/benchmarks.md ]]; then
	echo
	# The summary table, as the page shows it.
	sed -n '/^## Summary/,/^## Machine/p' "$out/benchmarks.md" | sed '$d'
fi
elapsed=$((SECONDS - start))
printf 'bench.sh: %s in %dm%02ds; page: %s/benchmarks.md\n' "$([[ $status == 0 ]] && echo done || echo FAILED)" $((elapsed / 60)) $((elapsed % 60)) "$out"
exit $status
