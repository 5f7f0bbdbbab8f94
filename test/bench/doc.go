//go:build bench

// Command bench is weft's benchmark harness: it measures weft against
// Docker's built-in drivers on this machine, in the same run, interleaved,
// and writes docs/benchmarks.md and the plots in docs/img. Run it through
// scripts/bench.sh (which installs what it needs and builds weft):
//
//	scripts/bench.sh           # full run; regenerates docs/benchmarks.md
//	scripts/bench.sh --quick   # smoke run with few iterations; writes to a temp dir
//
// or by hand, as root:
//
//	go build -tags bench -o /tmp/weft-bench-bin ./test/bench
//	/tmp/weft-bench-bin run -weft ./weft -out docs [-quick] [-networks N] [-only attach,plugin,...]
//
// # What it measures (each against its baseline, in the same run)
//
//   - attach: `docker run --rm --network X image true` for a weft network, a
//     user-defined Docker bridge network and --network none, in rounds whose
//     order rotates; weft's added cost over none divided by Docker's.
//   - plugin: CreateEndpoint+Join and Leave+DeleteEndpoint straight over
//     weft's socket (the JSON dockerd sends), with 1, 100 and 1000 endpoints
//     already present; three weft processes, one per population, sampled in
//     turn.
//   - netcreate: `docker network create` for weft and Docker's bridge, up
//     to 1000 networks each (-networks N; -quick: 20); the 1st, middle and
//     last network's create time and the growth last/1st. Timed creates run
//     one at a time, weft and Docker alternating; above 100 networks only
//     windows of 10 around the 1st and every tenth network are timed and
//     the networks between them are created several at a time, untimed.
//     Firewall rules (iptables-save) as a function of networks and of
//     endpoints, with a fitted slope; iptables processes per create
//     (strace); request/response and throughput between two containers
//     with all the networks in place against the same with none (each
//     relative to a bare veth pair in the same rounds); weft's repair after
//     `iptables -F WEFT-FORWARD` and `ipset flush` (time until new
//     connections between two containers work again and weft logs its
//     repair; subcommand tcp-probe). Networks are removed several per
//     `docker network rm` and several commands at once, after the first
//     few are timed one at a time.
//   - dataplane: TCP throughput (iperf3) and request/response latency (the
//     harness's own ping-pong, subcommands rr-server/rr-client) container to
//     container: weft bridge, Docker bridge, and a bare veth pair between two
//     namespaces. Tools run from the host inside the containers' network
//     namespaces with nsenter, so the image needs none. More topologies
//     (macvlan) plug in as further dataplane targets (see targets in
//     dataplane.go).
//   - multihost: the same throughput and request/response measurement
//     across two docker hosts (namespaces weft-bench-mh1 and weft-bench-mh2,
//     each with its own dockerd and weft) joined by an underlay, a Linux
//     bridge at MTU 1500 in a namespace of its own (weft-bench-mhlan,
//     testhost.Switch, as the end-to-end suite's LANs): a weft vxlan network
//     on both hosts (the wefts sharing one etcd member the harness starts,
//     its sockets under the work directory); in a swarm of the same two
//     hosts (swarm init on one, join on the other), weft's global-scope
//     install (the managed plugin, built once by scripts/build-plugin.sh
//     --binary in a builder dockerd of the harness, WEFT_SCOPE=global on
//     both hosts) and Docker's overlay, each with a task per host of a
//     global --endpoint-mode dnsrr service; and the underlay itself, host
//     namespace to host namespace (the ceiling), interleaved; each driver
//     chooses its MTU. If Docker's overlay or the managed plugin cannot run
//     on the machine, the section says why and still measures the rest.
//     Needs etcd (/usr/bin/etcd, Debian's etcd-server).
//   - footprint: weft's resident memory idle and with 1000 endpoints; the
//     ipam and plugin Go benchmarks (10^6 addresses in a /64).
//
// # Isolation
//
// Like the end-to-end suite (test/e2e/doc.go), the harness never touches an
// engine already running on the machine and sends packets only inside
// namespaces it created. Its docker host is a network namespace
// weft-bench-main with a holder process in a private mount namespace (a
// private tmpfs on /run, so /run/docker/plugins/weft.sock and
// /run/containerd are its own), a dockerd with its own data-root,
// exec-root, socket and --cgroup-parent /weft-bench-main, and weft as a
// legacy plugin beside it. The plugin-latency weft processes run in
// namespaces weft-bench-pl* with their own state directories and sockets and
// no dockerd. The multihost section's two hosts (weft-bench-mh1, -mh2) are
// built the same way; their underlay addresses are in 198.18.0.0/24 (RFC
// 2544's benchmarking range) on a bridge that has no link out, and their
// etcd listens only on unix sockets under the work directory. The
// multihost section's plugin build is the one thing that reaches out: its
// builder dockerd (cgroups under /weft-bench-mhbuilder, its networking off, a
// private /run) runs in the machine's own network namespace so that the
// Dockerfile's apt-get reaches Debian's mirror, as the end-to-end suite's
// builder does. Everything lives under the work directory (default
// /tmp/weft-bench). At start the harness takes /run/weft-bench.lock and
// removes what a crashed earlier run left (processes recorded in its
// pidfiles, weft-bench-* namespaces and cgroups, the work directory); at the
// end it removes everything it made. It never looks at weft-e2e* objects.
// The processes, the docker host's namespaces and dockerd, and the clean-up
// are the end-to-end suite's own code, shared in package test/testhost.
package main
