#!/usr/bin/env bash
# scripts/bench-attach.sh — how much weft adds to starting a container.
#
#   scripts/bench-attach.sh [ROUNDS]     (default 25; as root)
#
# Times `docker run --rm --network X busybox true` for a weft network, a
# user-defined Docker bridge network, Docker's default bridge network and
# --network none, interleaved round by round (the order rotates each round),
# and prints median, p90 and min of each, and weft's added cost over none as
# a ratio of Docker's added cost over none — against the user-defined bridge
# (which, like a weft network, gets Docker's embedded DNS: the fair
# comparison) and against the default bridge. Goal: ratio <= 1.0.
#
# It runs on an isolated dockerd exactly like the end-to-end suite (it is
# the suite's TestAttachLatency with more rounds): its own network
# namespace, dockerd and weft, torn down afterwards; an engine already
# running on this machine (e.g. the one scripts/run.sh started) is not
# touched and does not disturb the numbers. weft logs at info level here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=${1:-25}
if ! [[ $rounds =~ ^[0-9]+$ ]] || ((rounds < 20)); then
	echo "bench-attach.sh: ROUNDS must be a number >= 20 (got $rounds)" >&2
	exit 2
fi
if [[ $(id -u) != 0 ]]; then
	echo "bench-attach.sh: run as root (it starts dockerd in a network namespace)" >&2
	exit 1
fi
for tool in go dockerd docker; do
	command -v "$tool" >/dev/null || {
		echo "bench-attach.sh: $tool not found; scripts/test.sh (or apt-get install -y docker.io busybox-static iptables) installs what is needed" >&2
		exit 1
	}
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "running $rounds rounds x 4 networks (about $((rounds + 10)) s)..."
if ! WEFT_E2E_BENCH_RUNS=$rounds WEFT_E2E_LOG_LEVEL=info \
	go test -tags e2e -count=1 -v -timeout 60m -run '^TestAttachLatency$' ./test/e2e/ >"$out" 2>&1; then
	cat "$out"
	echo "bench-attach.sh: the benchmark failed" >&2
	exit 1
fi
# The test's report, without go test's indentation and file:line prefix.
sed -n '/attach latency,/,/ratio weft \/ docker bridge (default)/p' "$out" | sed -E 's/^ *attach_test\.go:[0-9]+: //; s/^        //'
