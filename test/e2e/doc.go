// Package e2e holds weft's end-to-end tests: the real weft binary serving a
// real dockerd, real containers and real traffic. Every test file is behind
// the build tag e2e, and the tests need root:
//
//	go test -tags e2e -count=1 -v ./test/e2e/...
//
// (scripts/test.sh runs them after the unit and privileged tests.)
//
// # Isolation
//
// The suite never touches a Docker engine already running on the machine,
// and two runs with different prefixes (WEFT_E2E_PREFIX, below) run side by
// side. Everything machine-wide a run creates is named after its prefix
// PREFIX (default weft-e2e): the namespaces and cgroups PREFIX-NAME, the lock
// /run/PREFIX.lock, the work directory /tmp/PREFIX, the tmpfs mounts. It
// needs no host port, path or name to be free beyond those: the registry of
// the managed-plugin tests listens on a port the kernel hands out. (Image
// names, labels and the ports tests publish live in each host's own dockerd
// and namespace.) Each test host is
//
//   - a network namespace PREFIX-NAME with loopback up;
//   - a "holder" process (sleep) in that namespace and in a mount namespace
//     of its own whose /run is a private tmpfs (with empty /run/docker/plugins
//     and /run/containerd), so the legacy plugin socket
//     /run/docker/plugins/weft.sock and containerd's sockets are private to
//     the host, and the machine's /run gets nothing;
//   - a dockerd started with nsenter into the holder's net and mount
//     namespaces (never `ip netns exec`, which remounts /sys and breaks
//     dockerd's cgroups), with its own --data-root, --exec-root, --pidfile,
//     --config-file, -H unix://DIR/docker.sock and --cgroup-parent
//     /PREFIX-NAME, live-restore off (on for the live-restore test), and
//     WEFT_E2E_DOCKERD_ARGS;
//   - weft started the same way, as a legacy plugin on the private socket,
//     with its state directory under DIR (for the state-directory test, a
//     small tmpfs mounted there in the holder's mount namespace). A start
//     waits until weft is ready: it accepts dockerd's handshake, then
//     answers /Weft.State, which it does only once its state is loaded and
//     the kernel, published ports included, is reconciled;
//   - optionally an "outside" host: a namespace PREFIX-NAME-out joined to
//     the host namespace by a veth pair (host 192.0.2.1/24, outside
//     192.0.2.2/24, TEST-NET-1). The outside namespace has no route to any
//     container subnet, so a container reaches it only through masquerade.
//
// The processes, the namespace, holder and dockerd of a host and the stale
// clean-up below are package test/testhost (shared with the benchmark
// harness, test/bench).
//
// The host namespaces have no link to the machine's own network: test traffic
// stays in namespaces the suite created. Most tests share one host (created on
// first use, torn down after the last test); tests that kill or restart weft
// or dockerd get a fresh host of their own. Every test removes the containers
// and networks it made and checks that nothing of weft's outlived them: no
// link or firewall rule, and in weft's own view (POST /Weft.State on its
// socket) no network, endpoint, pool, allocated address, store record or
// unclaimed reservation more or less than before (Host.Snapshot,
// AssertNothingNew, AssertClean).
//
// # Reliability tests (rel_*_test.go)
//
// weft SIGKILLed at each crash point of its mutating calls (a weft built
// with -tags weftfault, into WEFT_E2E_DIR/bin/weft-fault, kills itself where
// WEFT_CRASH_AT says), dockerd restarted with weft down, dockerd SIGKILLed
// under live-restore with traffic running, and the state directory full
// and read-only. Their figures are logged on lines starting with
// "reliability: ".
//
// At start the suite takes an exclusive lock (/run/PREFIX.lock; one run per
// prefix at a time), then removes what a crashed earlier run of the same
// prefix left: processes in PREFIX-* namespaces and cgroups and those
// recorded in pidfiles under its directory, the namespaces, cgroups and the
// directory. A prefix is weft-e2e followed by at most 16 lowercase letters
// and digits and never another "-", so "PREFIX-" never begins another
// prefix's names: the run weft-e2e does not touch weft-e2e26-main.
//
// Runs side by side share one thing on purpose: /run/weft-e2e.heavy.lock,
// which a run holds while it loads the whole machine (the load test's
// cycles, the managed plugin's Dockerfile build), so that two runs take
// turns there rather than starving each other (and dockerd). A run waits for
// it at most 20 minutes, then goes ahead. The load test does not wait in
// place: if another run holds the lock when its turn comes, it moves to the
// end of the run (t.Parallel) and takes its turn there, so that runs started
// together (scripts/test.sh) do not idle at the same point.
//
// Runs may also share the managed plugin's builds (WEFT_E2E_PLUGIN_CACHE,
// below): the first to need them runs scripts/build-plugin.sh (both tags:
// from the Dockerfile, and with --binary) and saves each plugin directory
// (root filesystem and config.json) under a key of the build context's
// contents; the others wait for that, create the plugins from the
// directories with `docker plugin create` and push them from their own
// engine.
//
// # Environment knobs
//
//	WEFT_E2E_PREFIX     names what the run creates machine-wide (above;
//	                    default weft-e2e, e.g. weft-e2e26); runs with
//	                    different prefixes and directories may run at once
//	WEFT_E2E_DIR        work directory (default /tmp/PREFIX); removed at start;
//	                    give each prefix its own
//	WEFT_E2E_BIN        a prebuilt weft binary (default: go build of the repo)
//	WEFT_E2E_DOCKERD    dockerd binary (default: dockerd from PATH); it finds
//	                    containerd, its shim and docker-proxy on PATH
//	                    (scripts/engine-debian13.sh unpacks another engine)
//	WEFT_E2E_DOCKERD_ARGS extra dockerd flags, space-separated, appended to
//	                    every dockerd the suite starts (test hosts and the
//	                    plugin builder), e.g. --firewall-backend=nftables
//	                    on Docker 28 and later. With the nftables back-end
//	                    dockerd does not turn forwarding on itself and
//	                    refuses to start without it, so then each test host
//	                    starts with IPv4 and IPv6 forwarding on (in its own
//	                    namespace only; otherwise it starts with IPv4
//	                    forwarding off, as a fresh Docker host)
//	WEFT_E2E_DOCKER     docker CLI (default: docker from PATH)
//	WEFT_E2E_PLUGIN_CACHE a directory (absolute path) in which runs share
//	                    the managed plugin's builds (above);
//	                    default none: every run builds its own.
//	                    scripts/test.sh gives its pre-build and both engine
//	                    runs one in its work directory
//	WEFT_E2E_PLUGIN     how weft is installed: legacy (default; the only one so far)
//	WEFT_E2E_LOG_LEVEL  weft's --log-level (default debug)
//	WEFT_E2E_KEEP       1 = leave hosts, namespaces and logs in place at the end
//	                    (the next run removes them)
//	WEFT_E2E_BENCH_RUNS rounds of TestAttachLatency (default 5; scripts/bench-attach.sh uses more)
//	WEFT_E2E_LOAD_CYCLES cycles of TestLoadParallelRuns (default 100), each
//	                    starting 32 containers at once and removing them; a
//	                    cycle takes 5-6.5 s on a 2-core machine (100: 9-11
//	                    minutes)
//
// On a failure a test prints the part of weft's and dockerd's logs written
// while it ran; the full logs are under WEFT_E2E_DIR/<host>/ (kept with
// WEFT_E2E_KEEP=1).
package e2e
