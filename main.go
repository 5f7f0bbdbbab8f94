// Command weft is a Docker network plugin: one process serves Docker's
// NetworkDriver and IpamDriver APIs on one unix socket and drives the kernel
// through netlink. This file is wiring only: settings → socket → store → IPAM
// → modes → plugin; it is the only place that exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/bridge"
	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/dataplane/macvlan"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/dataplane/vxlan"
	"github.com/weftnet/weft/doctor"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/metrics"
	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/status"
	"github.com/weftnet/weft/store/bolt"
	"github.com/weftnet/weft/store/etcd"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Println("weft", version)
		return 0
	case "serve":
		return serve(args)
	case "status":
		return status.Main(args, os.Stdout, os.Stderr, os.Getenv)
	case "doctor":
		return doctor.Main(args, os.Stdout, os.Stderr, os.Getenv)
	default:
		fmt.Fprintf(os.Stderr, "weft: unknown command %q; use serve, status, doctor or version\n", cmd)
		return 2
	}
}

func serve(args []string) int {
	st, err := plugin.ParseSettings(args, os.Getenv, os.Stderr)
	if errors.Is(err, plugin.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: st.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Listen first: dockerd gives a managed plugin a few seconds to accept;
	// requests wait inside the driver until the state is loaded.
	driver, err := plugin.NewDriver(log, st.Scope)
	if err != nil {
		log.Error("invalid settings", "err", err)
		return 2
	}
	l, err := plugin.Listen(st.Socket)
	if err != nil {
		log.Error("cannot listen", "socket", st.Socket, "err", err)
		return 1
	}
	mx, metricsDone := startMetrics(ctx, st.Metrics, driver, log)
	defer metricsDone() // runs last: the stop() deferred below ends the metrics server first
	srv := plugin.NewServer(driver, log, plugin.ServerOptions{Observer: mx.Observer()})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.Info("listening", "socket", st.Socket, "version", version)

	closeDeps, err := start(ctx, driver, st, log, mx)
	if err != nil {
		log.Error("start-up failed; answering every request with this error", "err", err)
	}
	defer closeDeps()
	background := make(chan struct{})
	go func() { defer close(background); driver.Run(ctx) }()
	defer func() { stop(); <-background }() // stop ends it whatever ended serving

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		log.Error("server stopped", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	_ = os.Remove(st.Socket)
	return 0
}

// start opens the store, builds IPAM and the modes, and hands them to the
// driver, which loads and reconciles its state.
func start(ctx context.Context, d *plugin.Driver, st plugin.Settings, log *slog.Logger, mx *metrics.Metrics) (func(), error) {
	dir, why := st.ResolveStateDir(os.Stat)
	st.StateDir = dir
	log.Info("state directory: "+dir, "why", why)
	db, err := openStore(ctx, d, st.StoreFile(), log)
	if err != nil {
		d.Fail(err)
		return func() {}, err
	}
	closeDB := func() { _ = db.Close() }
	h, err := nl.NewHost()
	if err != nil {
		d.Fail(err)
		return closeDB, err
	}
	// Rules must go where dockerd writes its own: an ACCEPT in the nft
	// tables does nothing against dockerd's FORWARD DROP in the legacy ones.
	backend := fw.DetectBackend(ctx)
	name := backend.Name
	if name == "" {
		name = "unknown"
	}
	switch {
	case backend.DockerFirewall == fw.FirewallNftables:
		// Docker 29 --firewall-backend=nftables: dockerd's rules are in its
		// own nftables table; weft's iptables rules coexist with them.
		log.Info("dockerd's firewall back-end: nftables; weft's rules coexist with it through iptables back-end "+name, "programs", backend.IPv4+" "+backend.IPv6, "why", backend.Reason)
	case backend.FromDocker:
		log.Info("dockerd's firewall back-end: iptables; weft's rules go beside dockerd's in iptables back-end "+name, "programs", backend.IPv4+" "+backend.IPv6, "why", backend.Reason)
	default:
		log.Warn("iptables back-end: "+name+" (dockerd's own chains not found, so this is a guess)", "programs", backend.IPv4+" "+backend.IPv6, "why", backend.Reason)
	}
	firewall, err := fw.New(log, backend.Option())
	if err != nil {
		d.Fail(err)
		return closeDB, err
	}
	// A swarm install serves vxlan networks only: without the other modes
	// it never reconciles (and so never removes) bridges, macvlan links or
	// the bridge mode's chains and sets that a local-scope weft on the node
	// owns, and its vxlan mode's names are its own (vxlanOpts).
	modes := map[dataplane.ModeName]dataplane.Mode{dataplane.Vxlan: vxlan.New(h, log, vxlanOpts(st, firewall)...)}
	if st.Scope != plugin.ScopeGlobal {
		bridgeOpts, err := firewallDesign(st.Firewall, h, log)
		if err != nil {
			d.Fail(err)
			return closeDB, err
		}
		modes[dataplane.Bridge] = bridge.New(h, firewall, log, bridgeOpts...)
		modes[dataplane.Macvlan] = macvlan.New(h, log)
	}
	deps := plugin.Deps{
		Store:            mx.Store(db),
		IPAM:             ipam.New(st.DefaultPools),
		Modes:            modes,
		Routes:           h,
		ReservationGrace: st.ReservationGrace,
		LeaseTTL:         st.LeaseTTL,
		Observer:         mx.Observer(),
	}
	deps.HostName, _ = os.Hostname()
	closeCluster := func() {}
	if st.Etcd.Enabled() {
		deps.Cluster, closeCluster = connectCluster(ctx, st.Etcd, log, mx)
	}
	if st.Scope == plugin.ScopeGlobal && st.GossipKey != nil {
		deps.Gossip = &plugin.GossipSettings{Key: st.GossipKey, Port: st.GossipPort}
	}
	closeAll := func() {
		// Kernel work the modes finish after answering (a veth pair's
		// deletion) is done before weft exits.
		drainCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for name, mode := range deps.Modes {
			if dr, ok := mode.(dataplane.Drainer); ok {
				if err := dr.Drain(drainCtx); err != nil {
					log.Warn("exiting before the kernel finished; the next start removes what is left", "mode", name, "err", err)
				}
			}
		}
		closeCluster()
		closeDB()
	}
	return closeAll, d.Start(ctx, deps)
}

// vxlanOpts are the vxlan mode's settings: the VTEP address when
// WEFT_VTEP_ADDR gives one (else the mode uses the default route's source),
// the checksum offload (WEFT_VXLAN_OFFLOAD), the firewall for its
// known-VTEP filter, and the names of its kernel objects: a global-scope
// weft's differ from a local-scope one's, so the two can run on one node
// without either reconciling away the other's links, sets or rules.
func vxlanOpts(st plugin.Settings, firewall *fw.Firewall) []vxlan.Option {
	flavour := vxlan.Local()
	if st.Scope == plugin.ScopeGlobal {
		flavour = vxlan.Swarm()
	}
	opts := []vxlan.Option{vxlan.WithFirewall(firewall), vxlan.WithFlavour(flavour)}
	if o, err := vxlan.ParseOffload(st.VxlanOffload); err == nil { // ParseSettings checked it
		opts = append(opts, vxlan.WithChecksumOffload(o))
	}
	if st.VTEP.IsValid() {
		opts = append(opts, vxlan.WithVTEP(st.VTEP))
	}
	return opts
}

// connectCluster opens the etcd store in the background, retrying with
// backoff until it opens or ctx ends: etcd may be down while weft starts,
// and bridge networks must not wait for it. Until then, requests that need
// the cluster fail at once with the reason. The returned func stops the
// attempts and closes the store.
func connectCluster(ctx context.Context, es plugin.EtcdSettings, log *slog.Logger, mx *metrics.Metrics) (*plugin.ClusterLink, func()) {
	link := plugin.NewClusterLink(es.Name())
	cfg := etcd.Config{Endpoints: es.Endpoints, CAFile: es.CAFile, CertFile: es.CertFile, KeyFile: es.KeyFile}
	ctx, cancel := context.WithCancel(ctx)
	opened := make(chan *etcd.Store, 1)
	go func() {
		defer close(opened)
		wait := time.Second
		var last string
		for {
			s, err := etcd.Open(ctx, cfg)
			if err == nil {
				log.Info("connected to the cluster store", "store", s.Name())
				link.Connected(mx.Cluster(s))
				opened <- s
				return
			}
			link.Failed(err)
			if err.Error() != last {
				log.Error("cannot reach the cluster store yet; bridge networks work, shared networks wait; retrying", "store", es.Name(), "err", err)
				last = err.Error()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 10*time.Second)
		}
	}()
	return link, func() {
		cancel()
		if s, ok := <-opened; ok && s != nil {
			_ = s.Close()
		}
	}
}

// openStore opens the state file, retrying until it opens or ctx ends: what
// keeps it shut (a read-only or full state directory, another weft still
// holding the file during an upgrade, a damaged file moved aside) is fixed by
// the operator while weft runs, and weft then starts without being
// restarted. Meanwhile requests answer with the reason at once.
func openStore(ctx context.Context, d *plugin.Driver, path string, log *slog.Logger) (*bolt.Store, error) {
	const first, most = time.Second, 10 * time.Second
	wait := first
	var last string
	for {
		db, err := bolt.Open(path)
		if err == nil {
			if last != "" {
				log.Info("state file opened; starting", "file", path)
			}
			d.Unavailable(nil)
			return db, nil
		}
		if err.Error() != last { // once per distinct reason, not every retry
			log.Error("cannot open the state file; answering every request with this error and retrying", "err", err)
			last = err.Error()
		}
		d.Unavailable(err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, most)
	}
}

// firewallDesign picks the bridge mode's firewall design from the
// WEFT_FIREWALL setting and what the kernel offers, and logs it.
func firewallDesign(setting string, h *nl.Handle, log *slog.Logger) ([]bridge.Option, error) {
	if setting == plugin.FirewallPerNetwork {
		log.Info("firewall: one set of iptables rules per network (WEFT_FIREWALL=per-network)")
		return nil, nil
	}
	if err := h.IpsetSupported(); err != nil {
		if setting == plugin.FirewallFixed {
			return nil, fmt.Errorf("WEFT_FIREWALL=fixed needs ipset in the kernel (CONFIG_IP_SET): %w; use auto or per-network", err)
		}
		log.Warn("firewall: one set of iptables rules per network (the kernel has no ipset; with it, weft's rules stay the same however many networks exist)", "err", err)
		return nil, nil
	}
	log.Info("firewall: fixed iptables rules; networks are told apart by device groups and ipsets")
	return []bridge.Option{bridge.WithSets(h)}, nil
}
