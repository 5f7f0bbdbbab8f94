#!/usr/bin/env bash
# scripts/test.sh — every test of weft, in the order a failure is cheapest to
# find: format, vet, static analysis, build, unit + privileged tests, fuzzing,
# then the end-to-end suite against real dockerd processes — on two engines,
# Debian 12's docker.io (20.10) and Debian 13's (26.1, with Debian 13's
# containerd 1.7 and Debian 12's runc), side by side. CI runs exactly this
# (.ci/run); so can you, as root on a Debian 12 machine:
#
#   scripts/test.sh            # everything
#   scripts/test.sh --no-e2e   # skip the end-to-end phase (quicker local loop)
#
# It installs what it needs with apt-get (only what is missing), and starts
# whatever daemons the tests need itself (the e2e suite runs its own dockerd
# per test host, in network namespaces; it never touches an engine already
# running on this machine). The Debian 13 engine is not installed:
# scripts/engine-debian13.sh fetches its two packages with a private apt
# configuration (cached in /var/cache/weft-test/debian13) and unpacks them
# under this run's work directory.
#
# The two e2e runs are independent and run at once, each with its own
# WEFT_E2E_PREFIX (PREFIX20 and PREFIX26 for the engines' major versions,
# PREFIX being WEFT_E2E_PREFIX, default weft-e2e) and directory (/tmp/PREFIXNN,
# or WEFT_E2E_DIR/PREFIXNN if WEFT_E2E_DIR is set), and their own summary row;
# they take turns only where each would load the whole machine (the load
# test, the plugin build: /run/weft-e2e.heavy.lock, test/e2e/doc.go). The
# run that finds the other one in its load test does not wait: its own load
# test runs last (test/e2e/load_test.go).
#
# The managed plugin (scripts/build-plugin.sh: the Dockerfile's build is
# minutes of compiling) is built once per run of this script, not once per
# engine: after the unit phase, an e2e run of TestManagedPluginBuild alone
# (prefix PREFIXbuild, Debian 12's engine, phase row plugin-build) builds
# both tags in the background, beside the fuzz phase (whose length is fixed)
# and the start of the e2e runs, and leaves the plugin directories in this
# run's WEFT_E2E_PLUGIN_CACHE; each engine's run creates the plugins from
# them (`docker plugin create`, waiting for the build if it is not done
# yet) and pushes them from its own engine (test/e2e/managed_host_test.go).
#
# A test that skips fails the run unless its skip message says
# "missing kernel feature:" (test/nstest.RequireKernelFeature): with
# WEFT_REQUIRE_PRIVILEGED=1 set here, privileged tests must really run.
#
# Environment: WEFT_TEST_GO_FLAGS (extra flags for the go test phases, e.g.
# "-run TestX"); WEFT_FUZZ_TIME, how long each fuzz target runs in the fuzz
# phase (a go test -fuzztime value: default 5s, e.g. 10m for a long hunt, 0
# to skip the phase); WEFT_TEST_ENGINES, the e2e engines ("debian12
# debian13", the default, or one of them); and the e2e knobs in
# test/e2e/doc.go (WEFT_E2E_*).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
run_e2e=1
for arg in "$@"; do
	case $arg in
	--no-e2e) run_e2e=0 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d'
		exit 0
		;;
	*)
		echo "test.sh: unknown argument $arg (use --no-e2e)" >&2
		exit 2
		;;
	esac
done

if [[ $(id -u) != 0 ]]; then
	echo "test.sh: run as root: the privileged and end-to-end tests need it (and apt-get installs what is missing)" >&2
	exit 1
fi

staticcheck_version=v0.8.2 # staticcheck 2026.2.2; supports the go version in go.mod

work=$(mktemp -d /tmp/weft-test.XXXXXX)
policy_rc_created=0
cleanup() {
	if [[ $policy_rc_created == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
	rm -rf "$work"
}
trap cleanup EXIT

phases=()   # "name|status|seconds"
failed=0
record() { # name status seconds
	phases+=("$1|$2|$3")
	if [[ $2 == FAILED ]]; then failed=1; fi
}
banner() { printf '\n######## %s ########\n' "$*"; }

# ---- packages ---------------------------------------------------------------
# docker.io: dockerd 20.10 (+ containerd, runc) for the e2e suite; iptables:
# weft's and dockerd's firewall; busybox-static: the test image; iproute2 and
# util-linux: ip, nsenter, unshare; nftables: the nft program, with which a
# privileged test plants Docker 29's nftables table; ipset: the ipset program,
# with which tests flush and inspect weft's sets as an administrator would
# (weft itself reaches ipsets through netlink). etcd-server and
# docker-registry are for the cluster-store and managed-plugin tests (never
# started by installing).
packages=(docker.io iptables nftables ipset busybox-static iproute2 util-linux etcd-server docker-registry)
banner "packages"
t0=$SECONDS
missing=()
for p in "${packages[@]}"; do
	if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}"
	# No service may start in this machine's root namespace because a
	# package was installed (Debian's policy-rc.d convention).
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		policy_rc_created=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$work/apt.log" 2>&1 || {
		cat "$work/apt.log"
		echo "test.sh: apt-get install failed" >&2
		exit 1
	}
	if [[ $policy_rc_created == 1 ]]; then
		rm -f /usr/sbin/policy-rc.d
		policy_rc_created=0
	fi
else
	echo "all present: ${packages[*]}"
fi
command -v go >/dev/null || {
	echo "test.sh: go is not installed" >&2
	exit 1
}
go version
record packages ok $((SECONDS - t0))

# The e2e engines: "debian12" is the machine's docker.io; "debian13" is
# fetched now, in the background (network), and waited for before the e2e
# phase.
engines=${WEFT_TEST_ENGINES:-debian12 debian13}
for e in $engines; do
	case $e in
	debian12 | debian13) ;;
	*)
		echo "test.sh: WEFT_TEST_ENGINES: unknown engine $e (debian12, debian13)" >&2
		exit 2
		;;
	esac
done
# (Its exit status and duration go to a file, read before the e2e phase.)
engine13_pid=
if [[ $run_e2e == 1 && " $engines " == *" debian13 "* ]]; then
	(
		t0=$SECONDS rc=0
		scripts/engine-debian13.sh "$work/engine-debian13" >"$work/engine-debian13.dir" 2>"$work/engine-debian13.log" || rc=$?
		echo "$rc $((SECONDS - t0))" >"$work/engine-debian13.status"
	) &
	engine13_pid=$!
fi
# The e2e runs' prefixes start with this.
base=${WEFT_E2E_PREFIX:-weft-e2e}
# The load test runs 100 cycles of 32 parallel containers on demand
# (WEFT_E2E_LOAD_CYCLES=100, ~10 min on 2 cores for one engine); CI runs 8
# on the machine's engine (19-30 s a cycle with the other engine's run
# beside it; every address of the /26 is still handed out four times), to
# keep the whole script near 30 minutes.
load_cycles=${WEFT_E2E_LOAD_CYCLES:-8}
plugin_cache=$work/managed-plugin

# ---- static checks ----------------------------------------------------------
banner "gofmt"
t0=$SECONDS
unformatted=$(gofmt -l . 2>&1 || true)
if [[ -n $unformatted ]]; then
	echo "not gofmt'ed (run gofmt -w on them):"
	echo "$unformatted"
	record gofmt FAILED $((SECONDS - t0))
else
	echo "ok"
	record gofmt ok $((SECONDS - t0))
fi

banner "go vet (and with -tags e2e, -tags bench)"
t0=$SECONDS
if go vet ./... && go vet -tags e2e ./... && go vet -tags bench ./test/bench/...; then
	record vet ok $((SECONDS - t0))
else
	record vet FAILED $((SECONDS - t0))
fi

banner "staticcheck $staticcheck_version (with -tags e2e)"
t0=$SECONDS
tools=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/weft-tools/staticcheck-$staticcheck_version
if [[ ! -x $tools/staticcheck ]]; then
	mkdir -p "$tools"
	if ! GOBIN=$tools timeout 600 go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version" >"$work/sc-install.log" 2>&1; then
		tail -5 "$work/sc-install.log"
		echo "FAILED: could not install staticcheck from the Go module proxy (log above); static analysis is part of every run"
	fi
fi
if [[ -x $tools/staticcheck ]]; then
	if "$tools/staticcheck" -tags e2e ./...; then
		record staticcheck ok $((SECONDS - t0))
	else
		record staticcheck FAILED $((SECONDS - t0))
	fi
else
	record staticcheck FAILED $((SECONDS - t0))
fi

banner "go build"
t0=$SECONDS
if go build ./... && go build -o "$work/weft" . && "$work/weft" version; then
	record build ok $((SECONDS - t0))
else
	record build FAILED $((SECONDS - t0))
fi

# ---- tests ------------------------------------------------------------------
go build -o "$work/testsum" ./test/e2e/testsum

# e2e_suite PHASE PREFIX ENGINE_DIR TIMEOUT [GO-TEST-FLAGS...]: runs the e2e
# suite (the tests GO-TEST-FLAGS choose) with its own prefix and directory,
# on the machine's dockerd or, with ENGINE_DIR, the one unpacked there;
# writes the test log to $work/PHASE.out, the summary to $work/PHASE.sum and
# "STATUS SECONDS" to $work/PHASE.status. Runs in the background.
e2e_suite() {
	local phase=$1 prefix=$2 engine=$3 timeout=$4 t0=$SECONDS status=ok
	shift 4
	local -a vars=(WEFT_E2E_PREFIX="$prefix" WEFT_E2E_DIR="${WEFT_E2E_DIR:-/tmp}/$prefix"
		WEFT_E2E_BIN="$work/weft" WEFT_E2E_LOAD_CYCLES="$load_cycles" WEFT_E2E_PLUGIN_CACHE="$plugin_cache")
	if [[ -n $engine ]]; then
		# dockerd finds this engine's containerd, shim and docker-proxy on
		# PATH; runc is the machine's.
		vars+=(WEFT_E2E_DOCKERD="$engine/usr/sbin/dockerd" PATH="$engine/usr/sbin:$engine/usr/bin:$PATH")
	fi
	if ! env "${vars[@]}" go test -json "$@" -tags e2e -count=1 -timeout "$timeout" ./test/e2e/... 2>&1 |
		"$work/testsum" -phase "$phase" -v -summary "$work/$phase.sum" >"$work/$phase.out" 2>&1; then
		status=FAILED
		# A run that timed out or panicked leaves its hosts (dockerd,
		# namespaces, cgroups): the suite's start-up clean-up, with no
		# test to run, removes them (unless they are to be kept).
		if [[ ${WEFT_E2E_KEEP:-} != 1 ]] &&
			! env "${vars[@]}" go test -tags e2e -count=1 -run '^$' ./test/e2e/ >"$work/$phase.cleanup" 2>&1; then
			{
				echo "---- cleaning up after the run failed:"
				cat "$work/$phase.cleanup"
			} >>"$work/$phase.out"
		fi
	fi
	echo "$status $((SECONDS - t0))" >"$work/$phase.status"
}

# go_tests PHASE TESTSUM-FLAGS -- GO-TEST-ARGS...
go_tests() {
	local phase=$1 sumflags=$2
	shift 3
	local t0=$SECONDS
	# shellcheck disable=SC2086 # WEFT_TEST_GO_FLAGS is a list of flags
	if go test -json ${WEFT_TEST_GO_FLAGS:-} "$@" 2>&1 | "$work/testsum" -phase "$phase" $sumflags -summary "$work/$phase.sum"; then
		record "$phase" ok $((SECONDS - t0))
	else
		record "$phase" FAILED $((SECONDS - t0))
	fi
}

# Unit and privileged tests are the same `go test` run: privileged tests
# (*_netns_test.go) are ordinary tests that need root, and
# WEFT_REQUIRE_PRIVILEGED=1 turns their "not root" skip into a failure.
banner "unit + privileged tests (go test -race, WEFT_REQUIRE_PRIVILEGED=1)"
WEFT_REQUIRE_PRIVILEGED=1 go_tests unit+privileged "" -- -race -count=1 -timeout 15m ./...

# The managed plugin's builds, once for both engines' runs (see
# the header), in the background from now on: beside the fuzz phase, which
# runs for a fixed time whatever else runs (its targets run fewer
# executions while the build compiles), and the e2e runs' first minutes; it
# holds the e2e runs' heavy-section lock while it compiles (test/e2e/doc.go),
# long before their load tests. The e2e runs need it some ten minutes in.
# Its row and log come with the e2e phase.
prebuild_pid=
if [[ $run_e2e == 1 ]]; then
	mkdir -p "$plugin_cache"
	e2e_suite plugin-build "${base}build" "" 30m -run '^TestManagedPluginBuild$' &
	prebuild_pid=$!
fi

# Fuzzing: every fuzz target (plugin/fuzz_test.go, one per route of the
# plugin socket) runs for WEFT_FUZZ_TIME. go test fuzzes one target per run,
# so the targets run as separate go test processes, as many at once as there
# are CPUs, each with one fuzzing worker; with the default 5s the phase takes
# about 1.5 minutes on 2 CPUs. Minimizing is off (-fuzzminimizetime 0): it
# would spend these few seconds shrinking each new input instead of running
# more. The phase lists the executions each target reported
# (docs/reliability.md quotes them). A failing input is saved, as found,
# under plugin/testdata/fuzz/TARGET/ and replays with `go test -run
# TARGET/NAME ./plugin`; the unit phase above already ran every seed input.
#
# Go 1.26's fuzzing coordinator sometimes fails a run with a bare "context
# deadline exceeded" as a duration -fuzztime ends, having found nothing
# (golang/go#75804, fixed in Go 1.27). Such a run, and only such a run, is
# done once more; its row is marked "ok*". A count (WEFT_FUZZ_TIME=20000x)
# has no deadline to race.
#
# Each target starts from its seeds alone, in a corpus directory of this
# run (-test.fuzzcachedir, the testing package's flag that go test normally
# points at GOCACHE): the machine-wide corpus grows with every run, and once
# it held some 200 inputs a target spent its 5 seconds replaying them
# ("gathering baseline coverage") and never fuzzed at all.

# fuzz_one TARGET FUZZTIME: runs one target; writes its log and exit status.
fuzz_one() {
	local target=$1 fuzz_time=$2 attempt
	local log=$work/fuzz-$target.log
	for attempt in 1 2; do
		if go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzz_time" -fuzzminimizetime 0 -parallel 1 ./plugin \
			-args -test.fuzzcachedir="$work/fuzz-corpus/$target-$attempt" >"$log" 2>&1; then
			echo 0 >"$work/fuzz-$target.rc"
			return
		fi
		if ((attempt == 2)) || grep -q 'Failing input written' "$log" ||
			[[ $(grep -v -e '^fuzz: ' -e '^--- FAIL: ' -e '^FAIL' -e '^exit status ' "$log" | tr -d '[:space:]') != contextdeadlineexceeded ]]; then
			echo 1 >"$work/fuzz-$target.rc"
			return
		fi
		mv "$log" "$log.deadline"
	done
}

fuzz_phase() {
	local fuzz_time=$1 t0=$SECONDS
	local targets
	mapfile -t targets < <(grep -ho '^func Fuzz[A-Za-z0-9_]*' plugin/*_test.go | cut -d' ' -f2)
	if ((${#targets[@]} == 0)); then
		echo "no fuzz targets found in plugin/*_test.go"
		record fuzz FAILED $((SECONDS - t0))
		return
	fi
	# Build the instrumented test binary once, before the parallel runs
	# would each build it.
	if ! go test -run '^$' -fuzz "^${targets[0]}\$" -fuzztime 1x ./plugin >"$work/fuzz-build.log" 2>&1; then
		cat "$work/fuzz-build.log"
		record fuzz FAILED $((SECONDS - t0))
		return
	fi
	# (Only these jobs are waited for: the plugin pre-build runs beside.)
	local jobs target done_pid
	local -A running=() # PID -> 1
	jobs=$(nproc)
	for target in "${targets[@]}"; do
		while ((${#running[@]} >= jobs)); do
			done_pid=
			wait -n -p done_pid "${!running[@]}" || true
			if [[ -n $done_pid ]]; then
				unset "running[$done_pid]"
			else
				running=() # (none left to wait for)
			fi
		done
		fuzz_one "$target" "$fuzz_time" &
		running[$!]=1
	done
	if ((${#running[@]})); then wait "${!running[@]}" 2>/dev/null || true; fi
	local nfailed=0 total=0 rc execs result
	printf '%-36s %-7s %12s\n' "target ($fuzz_time each)" result executions
	for target in "${targets[@]}"; do
		rc=$(cat "$work/fuzz-$target.rc" 2>/dev/null || echo 1)
		execs=$(grep -o 'execs: [0-9]*' "$work/fuzz-$target.log" | tail -1 | cut -d' ' -f2 || true)
		result=ok
		if [[ $rc != 0 ]]; then
			result=FAILED
			nfailed=$((nfailed + 1))
		elif [[ -f $work/fuzz-$target.log.deadline ]]; then
			result="ok*"
		fi
		printf '%-36s %-7s %12s\n' "$target" "$result" "${execs:-?}"
		total=$((total + ${execs:-0}))
	done
	printf '%-36s %-7s %12s\n' "all ${#targets[@]} targets" "" "$total"
	if compgen -G "$work/fuzz-*.log.deadline" >/dev/null; then
		echo "ok*: the first run ended in Go's fuzztime deadline race (golang/go#75804) and was done again"
	fi
	for target in "${targets[@]}"; do
		if [[ $(cat "$work/fuzz-$target.rc" 2>/dev/null || echo 1) != 0 ]]; then
			echo
			echo "---- $target ----"
			grep -v '^fuzz: elapsed' "$work/fuzz-$target.log" | head -80
		fi
	done
	local status=ok
	if ((nfailed > 0)); then status=FAILED; fi
	# Not tests: the summary shows the line, and adds nothing to the test counts.
	echo "$status 0 0 0 ${#targets[@]} fuzz targets, $nfailed failed, $total executions ($fuzz_time each)" >"$work/fuzz.sum"
	record fuzz "$status" $((SECONDS - t0))
}
fuzz_time=${WEFT_FUZZ_TIME:-5s}
if [[ $fuzz_time != 0 ]]; then
	banner "fuzz (go test -fuzz, each target for $fuzz_time)"
	fuzz_phase "$fuzz_time"
fi

# e2e_run PHASE PREFIX ENGINE_DIR [SKIP]: the e2e suite, less the tests the
# regular expression SKIP names, beside another engine's run (e2e_suite).
e2e_run() {
	local -a skip=()
	[[ -z ${4:-} ]] || skip=(-skip "$4")
	# Two suites share the CPUs: on a loaded 2-core machine one took 38
	# minutes, so the go test deadline is 60 minutes (CI's limit is 90).
	# shellcheck disable=SC2086 # WEFT_TEST_GO_FLAGS is a list of flags
	e2e_suite "$1" "$2" "$3" 60m "${skip[@]}" ${WEFT_TEST_GO_FLAGS:-}
}

# When two engines run, the tests whose subject is weft itself rather than
# what dockerd sends run on one of them: weft talking to other wefts and to
# etcd across hosts, weft doctor on such hosts included (dockerd there only
# makes the containers, with the same calls every other test makes on both
# engines), and the load test (weft's
# allocator and accounting under 32 parallel starts). Every other test,
# the swarm one included, runs on both. Each engine takes about half of
# this time (roughly 6 minutes of a loaded machine each), which keeps the
# script near 30 minutes. With one engine, it runs everything.
only_on_machine_engine='^(TestLoadParallelRuns)$'
only_on_newer_engine='^(TestVxlanAcrossHosts|TestClusterMacvlanAcrossHosts|TestOperationsVxlan)$'

# engine_phase DOCKERD: the phase name for an engine, e2e-dockerMAJOR.MINOR
# (e2e-docker20.10, e2e-docker26.1).
engine_phase() {
	local v
	v=$("$1" --version | sed -nE 's/^Docker version ([0-9]+)\.([0-9]+).*/\1.\2/p')
	echo "e2e-docker${v:-unknown}"
}

if [[ $run_e2e == 1 ]]; then
	runs=() # "phase|prefix|engine-dir"
	if [[ -n $engine13_pid ]]; then
		banner "Debian 13 engine (scripts/engine-debian13.sh)"
		wait "$engine13_pid" 2>/dev/null || true
		read -r rc secs <"$work/engine-debian13.status" 2>/dev/null || rc=1 secs=0
		cat "$work/engine-debian13.log"
		if [[ $rc == 0 ]]; then
			engine13=$(cat "$work/engine-debian13.dir")
			record engine-debian13 ok "$secs"
			ph=$(engine_phase "$engine13/usr/sbin/dockerd")
			runs+=("$ph|$base${ph#e2e-docker}|$engine13")
		else
			record engine-debian13 FAILED "$secs"
		fi
	fi
	if [[ " $engines " == *" debian12 "* ]]; then
		dockerd=$(command -v dockerd) || dockerd=/usr/sbin/dockerd
		ph=$(engine_phase "$dockerd")
		runs=("$ph|$base${ph#e2e-docker}|" "${runs[@]}")
	fi
	declare -A run_pid=()
	for r in "${runs[@]}"; do
		IFS='|' read -r ph prefix engine <<<"$r"
		skip=
		if ((${#runs[@]} > 1)); then
			skip=$only_on_newer_engine
			[[ -z $engine ]] || skip=$only_on_machine_engine
		fi
		prefix=${prefix%%.*} # weft-e2e20.10 -> weft-e2e20: a prefix has no dot
		what="dockerd $engine/usr/sbin/dockerd"
		[[ -n $engine ]] || what="the machine's dockerd"
		banner "$ph: end-to-end tests (go test -tags e2e ./test/e2e/...) in the background: WEFT_E2E_PREFIX=$prefix, $what"
		[[ -z $skip ]] || echo "not on this engine (the other one runs them): $skip"
		e2e_run "$ph" "$prefix" "$engine" "$skip" &
		run_pid[$ph]=$!
	done
	# Each run's log as it ends.
	while ((${#run_pid[@]})); do
		done_pid=
		wait -n -p done_pid "${run_pid[@]}" || true
		if [[ -z $done_pid ]]; then # (no such job any more: wait for all)
			wait "${run_pid[@]}" 2>/dev/null || true
		fi
		for ph in "${!run_pid[@]}"; do
			if [[ -z $done_pid || ${run_pid[$ph]} == "$done_pid" ]]; then
				banner "$ph: end-to-end tests"
				cat "$work/$ph.out"
				unset "run_pid[$ph]"
			fi
		done
	done
	banner "plugin-build: the managed plugin, built once for both engines (since the unit phase ended)"
	wait "$prebuild_pid" 2>/dev/null || true
	cat "$work/plugin-build.out" 2>/dev/null || true
	for ph in plugin-build "${runs[@]%%|*}"; do
		read -r status secs <"$work/$ph.status" 2>/dev/null || status=FAILED secs=0
		record "$ph" "$status" "$secs"
	done
fi

# ---- summary ----------------------------------------------------------------
banner "summary"
tp=0 tf=0 ts=0
for ph in "${phases[@]}"; do
	IFS='|' read -r name status secs <<<"$ph"
	detail=""
	if [[ -f $work/$name.sum ]]; then
		read -r _ p f s line <"$work/$name.sum"
		tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
		detail=" — $line"
	fi
	printf '%-16s %-8s %4ss%s\n' "$name" "$status" "$secs" "$detail"
done
elapsed=$((SECONDS - start))
printf 'elapsed: %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
if [[ $failed != 0 ]]; then
	echo "RESULT: FAILED"
	if ((tf == 0)); then tf=1; fi # a failed non-test phase still fails the run
else
	echo "RESULT: ok"
fi
echo "total: $tp passed, $tf failed, $ts skipped"
exit $failed
