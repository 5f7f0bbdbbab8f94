package plugin

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/cluster/gossip"
	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
)

// DefaultSocket is where dockerd looks for a legacy plugin named "weft"; a
// managed plugin listens at the same path inside its own root.
const DefaultSocket = "/run/docker/plugins/weft.sock"

// Settings configure `weft serve`. Each has a flag and an environment
// variable (settable with `docker plugin set`); a flag wins over the variable.
type Settings struct {
	Socket   string
	LogLevel slog.Level
	StateDir string
	// StateMount is where the managed plugin's "state" mount appears
	// (config.json): a directory there, mounted with state.source=DIR,
	// holds the state instead of StateDir. Its default source is /dev/null,
	// which a plain install always has, so no host directory has to be made
	// first; StateDir is then Docker's own directory for the plugin (its
	// propagated mount). Empty outside the managed plugin.
	StateMount string
	Store      string // "" = bbolt file in StateDir
	// Etcd is the cluster store, parsed from Store = etcd://...; its
	// Endpoints are empty when there is none.
	Etcd         EtcdSettings
	Scope        string
	DefaultPools []ipam.DefaultPool
	// ReservationGrace is how long an IPAM pool or address may stay reserved
	// without a network or endpoint using it before weft releases it
	// (reservations.go); zero turns the release off.
	ReservationGrace time.Duration
	// Firewall chooses the bridge mode's firewall design: FirewallAuto,
	// FirewallFixed or FirewallPerNetwork.
	Firewall string
	// VTEP is this host's underlay address for vxlan networks; invalid
	// means the source address of the default route.
	VTEP netip.Addr
	// LeaseTTL is how long this host's vxlan endpoints outlive it in the
	// cluster store.
	LeaseTTL time.Duration
	// VxlanOffload is the vxlan links' transmit checksum offload: auto,
	// on or off (dataplane/vxlan.Offload).
	VxlanOffload string
	// Metrics is where to serve Prometheus metrics (WEFT_METRICS_ADDR);
	// its Network is empty when they are off.
	Metrics MetricsAddr
	// GossipKey and GossipPort configure the gossip between the wefts of
	// a swarm (WEFT_SCOPE=global); no key, no gossip.
	GossipKey  []byte
	GossipPort uint16
}

// MetricsAddr is a validated WEFT_METRICS_ADDR.
type MetricsAddr struct {
	// Network is "tcp", "unix", or "" (metrics off).
	Network string
	// Address is host:port for tcp, an absolute socket path for unix.
	Address string
}

// maxSocketPath is the longest path a unix socket may have (sun_path less
// its terminating NUL).
const maxSocketPath = 107

// ParseMetricsAddr reads WEFT_METRICS_ADDR: empty (off), host:port with an
// IP address or localhost and a port from 1 to 65535 (an empty host means
// every address), or unix:///absolute/path. A host name other than
// localhost is refused: it would be resolved once at start, and metrics
// are unauthenticated, so where they are served should be plain.
func ParseMetricsAddr(v string) (MetricsAddr, error) {
	if v == "" {
		return MetricsAddr{}, nil
	}
	bad := func(why string) (MetricsAddr, error) {
		return MetricsAddr{}, fmt.Errorf("WEFT_METRICS_ADDR %q is not valid: %s; use host:port such as 127.0.0.1:9323, "+
			"or unix:///run/weft-metrics.sock, or leave it empty for no metrics", v, why)
	}
	if path, ok := strings.CutPrefix(v, "unix://"); ok {
		switch {
		case !filepath.IsAbs(path):
			return bad("the socket path must be absolute (three slashes: unix:///path)")
		case len(path) > maxSocketPath:
			return bad(fmt.Sprintf("the socket path is longer than %d bytes", maxSocketPath))
		case strings.HasSuffix(path, "/"):
			return bad("the socket path names a directory")
		}
		return MetricsAddr{Network: "unix", Address: filepath.Clean(path)}, nil
	}
	if strings.Contains(v, "://") {
		return bad("the only scheme accepted is unix://")
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return bad("it is neither host:port nor unix:///path")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bad("the port must be a number from 1 to 65535")
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return bad("the host must be an IP address or localhost")
		}
	}
	return MetricsAddr{Network: "tcp", Address: v}, nil
}

// Firewall designs (WEFT_FIREWALL).
const (
	// FirewallAuto: fixed rules where the kernel has ipset, else per-network.
	FirewallAuto = "auto"
	// FirewallFixed: fixed rules, device groups and ipsets; weft does not
	// start without ipset.
	FirewallFixed = "fixed"
	// FirewallPerNetwork: a few iptables rules per network, as Docker's
	// bridge driver has (and weft before the fixed design).
	FirewallPerNetwork = "per-network"
)

// ResolveStateDir picks the state directory: StateMount when a directory is
// mounted there, else StateDir. It says which and why, for the log.
func (s Settings) ResolveStateDir(stat func(string) (fs.FileInfo, error)) (dir, why string) {
	if s.StateMount == "" {
		return s.StateDir, "--state-dir (WEFT_STATE_DIR)"
	}
	fi, err := stat(s.StateMount)
	switch {
	case err == nil && fi.IsDir():
		return s.StateMount, "the directory mounted with state.source"
	case err == nil:
		return s.StateDir, "state.source is not set; Docker's directory for the plugin, kept across restarts and upgrades, removed with the plugin"
	default:
		return s.StateDir, fmt.Sprintf("nothing usable at %s (%v); Docker's directory for the plugin", s.StateMount, err)
	}
}

// StoreFile is the bbolt file used when no cluster store is configured.
func (s Settings) StoreFile() string { return filepath.Join(s.StateDir, "weft.db") }

// setting describes one flag/env pair.
type setting struct {
	flag, env, def, usage string
}

func settingTable() []setting {
	return []setting{
		{"socket", "WEFT_SOCKET", DefaultSocket, "unix socket to serve the plugin APIs on"},
		{"log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error"},
		{"state-dir", "WEFT_STATE_DIR", "/var/lib/weft", "directory for weft's state file"},
		{"state-mount", "WEFT_STATE_MOUNT", "", "a path where a directory, when mounted, replaces --state-dir (the managed plugin's state.source)"},
		{"store", "WEFT_STORE", "", "state store: empty for the embedded file, etcd://host:2379,... for a cluster"},
		{"scope", "WEFT_SCOPE", ScopeLocal, "network scope announced to Docker: local or global"},
		{"default-pools", "WEFT_DEFAULT_POOLS", ipam.DefaultPoolsSetting, "pools for networks created without --subnet: base=CIDR,size=N;... (WEFT_SCOPE=global: " + ipam.GlobalDefaultPoolsSetting + ")"},
		{"reservation-grace", "WEFT_RESERVATION_GRACE", DefaultReservationGrace.String(), "release IPAM pools and addresses no network or container claimed within this time (0 = never)"},
		{"firewall", "WEFT_FIREWALL", FirewallAuto, "bridge firewall: auto (fixed rules where the kernel has ipset), fixed, or per-network"},
		{"vtep-addr", "WEFT_VTEP_ADDR", "", "this host's underlay address for vxlan networks (empty: the source address of the default route)"},
		{"vxlan-offload", "WEFT_VXLAN_OFFLOAD", "auto", "transmit checksum offload on vxlan links: auto (off on kernels before 5.7), on or off"},
		{"lease-ttl", "WEFT_LEASE_TTL", DefaultLeaseTTL.String(), "how long this host's vxlan endpoints outlive it in the cluster store, or in the other swarm nodes' tables (2s to 10m)"},
		{"gossip-key", "WEFT_GOSSIP_KEY", "", "WEFT_SCOPE=global: the key (16, 24 or 32 bytes, base64) every weft of the swarm shares for its gossip"},
		{"gossip-port", "WEFT_GOSSIP_PORT", strconv.Itoa(gossip.DefaultPort), "WEFT_SCOPE=global: the TCP and UDP port of weft's gossip, the same on every node"},
		{"metrics-addr", "WEFT_METRICS_ADDR", "", "serve Prometheus metrics at /metrics on host:port or unix:///path (off when empty)"},
		{"etcd-ca", "WEFT_ETCD_CA", "", "CA file for etcd TLS"},
		{"etcd-cert", "WEFT_ETCD_CERT", "", "client certificate file for etcd TLS"},
		{"etcd-key", "WEFT_ETCD_KEY", "", "client key file for etcd TLS"},
	}
}

// given reports whether the user set a setting, by flag or variable, rather
// than leaving it to its default.
func given(fs *flag.FlagSet, getenv func(string) string, name, env string) bool {
	set := getenv(env) != ""
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// ErrHelp is returned by ParseSettings when -h was given (usage is printed).
var ErrHelp = flag.ErrHelp

// ParseSettings reads flags from args and variables from getenv.
func ParseSettings(args []string, getenv func(string) string, usageOut io.Writer) (Settings, error) {
	fs := flag.NewFlagSet("weft serve", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	vals := map[string]*string{}
	for _, s := range settingTable() {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		vals[s.flag] = fs.String(s.flag, def, s.usage+" (env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return Settings{}, err
	}
	if fs.NArg() > 0 {
		return Settings{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var st Settings
	var err error
	st.Socket = *vals["socket"]
	if !filepath.IsAbs(st.Socket) {
		return st, fmt.Errorf("--socket %q must be an absolute path", st.Socket)
	}
	if err := st.LogLevel.UnmarshalText([]byte(*vals["log-level"])); err != nil {
		return st, fmt.Errorf("LOG_LEVEL %q is not valid: use debug, info, warn or error", *vals["log-level"])
	}
	st.StateDir = *vals["state-dir"]
	if !filepath.IsAbs(st.StateDir) {
		return st, fmt.Errorf("WEFT_STATE_DIR %q must be an absolute path", st.StateDir)
	}
	st.StateMount = *vals["state-mount"]
	if st.StateMount != "" && !filepath.IsAbs(st.StateMount) {
		return st, fmt.Errorf("WEFT_STATE_MOUNT %q must be an absolute path", st.StateMount)
	}
	st.Store = *vals["store"]
	if st.Etcd, err = parseEtcd(st.Store, *vals["etcd-ca"], *vals["etcd-cert"], *vals["etcd-key"]); err != nil {
		return st, err
	}
	st.Scope = *vals["scope"]
	switch st.Scope {
	case ScopeLocal:
	case ScopeGlobal:
		if len(st.Etcd.Endpoints) > 0 {
			return st, errors.New("WEFT_SCOPE=global and WEFT_STORE=etcd://... do not go together: swarm networks need no store " +
				"(swarm's own raft holds them, and weft's gossip carries the peers); leave WEFT_STORE empty in the swarm install")
		}
	default:
		return st, fmt.Errorf("WEFT_SCOPE %q is not valid: use local or global", st.Scope)
	}
	pools := *vals["default-pools"]
	if st.Scope == ScopeGlobal && !given(fs, getenv, "default-pools", "WEFT_DEFAULT_POOLS") {
		pools = ipam.GlobalDefaultPoolsSetting
	}
	if st.DefaultPools, err = ipam.ParseDefaultPools(pools); err != nil {
		return st, fmt.Errorf("WEFT_DEFAULT_POOLS: %w", err)
	}
	g := *vals["reservation-grace"]
	if st.ReservationGrace, err = time.ParseDuration(g); err != nil || st.ReservationGrace < 0 {
		return st, fmt.Errorf("WEFT_RESERVATION_GRACE %q is not valid: use a duration such as 2m or 90s, or 0 to never release unclaimed reservations", g)
	}
	st.Firewall = *vals["firewall"]
	switch st.Firewall {
	case FirewallAuto, FirewallFixed, FirewallPerNetwork:
	default:
		return st, fmt.Errorf("WEFT_FIREWALL %q is not valid: use auto, fixed or per-network", st.Firewall)
	}
	if v := *vals["vtep-addr"]; v != "" {
		if st.VTEP, err = dataplane.ParseVTEP(v); err != nil {
			return st, fmt.Errorf("WEFT_VTEP_ADDR: %w", err)
		}
	}
	st.VxlanOffload = *vals["vxlan-offload"]
	switch st.VxlanOffload {
	case "auto", "on", "off":
	default:
		return st, fmt.Errorf("WEFT_VXLAN_OFFLOAD %q is not valid: use auto, on or off", st.VxlanOffload)
	}
	ttl := *vals["lease-ttl"]
	if st.LeaseTTL, err = time.ParseDuration(ttl); err != nil || st.LeaseTTL < 2*time.Second || st.LeaseTTL > 10*time.Minute {
		return st, fmt.Errorf("WEFT_LEASE_TTL %q is not valid: use a duration from 2s to 10m, such as 15s", ttl)
	}
	if st.Metrics, err = ParseMetricsAddr(*vals["metrics-addr"]); err != nil {
		return st, err
	}
	if st.GossipKey, err = ParseGossipKey(*vals["gossip-key"]); err != nil {
		return st, err
	}
	if st.GossipPort, err = ParseGossipPort(*vals["gossip-port"]); err != nil {
		return st, err
	}
	return st, nil
}
