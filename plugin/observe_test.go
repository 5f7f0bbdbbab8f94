package plugin

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store/memstore"
)

// recordingObserver keeps what it is told.
type recordingObserver struct {
	mu       sync.Mutex
	requests []string // "route outcome"
	checks   []string // "mode found err?"
	repairs  []string // "mode ok|failed"
	recs     []string
}

func (o *recordingObserver) Request(route, outcome string, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took <= 0 {
		outcome += " (no duration)"
	}
	o.requests = append(o.requests, route+" "+outcome)
}

func (o *recordingObserver) Reconciled(mode string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recs = append(o.recs, mode+" "+okOrFailed(err))
}

func (o *recordingObserver) Checked(mode string, found bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := "clean"
	if found {
		r = "drift"
	}
	o.checks = append(o.checks, mode+" "+r+" "+okOrFailed(err))
}

func (o *recordingObserver) Repaired(mode string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.repairs = append(o.repairs, mode+" "+okOrFailed(err))
}

func okOrFailed(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

// syncBuffer is a log sink the server's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRequestsAreLoggedAndObserved: each mutating call gets one info line
// naming its IDs, outcome and duration (and its error when it failed); a
// read-only call stays at debug; every call reaches the Observer under a
// bounded route label.
func TestRequestsAreLoggedAndObserved(t *testing.T) {
	d, _ := startDriver(t, memstore.New())
	var logs syncBuffer
	obs := &recordingObserver{}
	_, w := serveOn(t, d, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})), ServerOptions{Observer: obs})

	w.ok("/NetworkDriver.CreateNetwork", `{"NetworkID":"`+wireNet+`","Options":{"com.docker.network.enable_ipv6":false},
		"IPv4Data":[{"AddressSpace":"weft-local","Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24"}],"IPv6Data":[]}`)
	w.fails("/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+testNetID2+`","EndpointID":"`+wireEp+`","Interface":{"Address":"10.1.0.2/24"}}`, "")
	w.ok("/NetworkDriver.GetCapabilities", "")
	if status, _ := w.post("/Made.Up", "{}"); status != http.StatusNotFound {
		t.Fatalf("made-up route answered %d", status)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one info line per mutating call (2), got %d:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{"level=INFO", "path=/NetworkDriver.CreateNetwork", "network=" + wireNet, "outcome=ok", "took="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("CreateNetwork line lacks %q: %s", want, lines[0])
		}
	}
	for _, want := range []string{"network=" + testNetID2, "endpoint=" + wireEp, "outcome=failed", "status=500", "err="} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("failed CreateEndpoint line lacks %q: %s", want, lines[1])
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"NetworkDriver.CreateNetwork ok", "NetworkDriver.CreateEndpoint failed", "NetworkDriver.GetCapabilities ok", "other refused"}
	if !reflect.DeepEqual(obs.requests, want) {
		t.Fatalf("observed %q, want %q", obs.requests, want)
	}
}

// TestRepairsAreObserved: checks, drift and repairs reach the Observer.
func TestRepairsAreObserved(t *testing.T) {
	ctx := context.Background()
	d, m := startDriver(t, memstore.New())
	obs := &recordingObserver{}
	d.deps.Observer = obs
	d.repairOnce(ctx)
	m.mu.Lock()
	m.damage = "WEFT-FORWARD flushed"
	m.mu.Unlock()
	d.repairOnce(ctx)
	m.mu.Lock()
	m.damage, m.stubborn = "iptables broken", true
	m.mu.Unlock()
	d.repairOnce(ctx)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if want := []string{"bridge clean ok", "bridge drift ok", "bridge drift ok"}; !reflect.DeepEqual(obs.checks, want) {
		t.Errorf("checks %q, want %q", obs.checks, want)
	}
	if want := []string{"bridge ok", "bridge failed"}; !reflect.DeepEqual(obs.repairs, want) {
		t.Errorf("repairs %q, want %q", obs.repairs, want)
	}
}

// TestStatusLiveAndFromStore: the running driver and its state file give
// the same networks, endpoints and pools.
func TestStatusLiveAndFromStore(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, _ := startDriver(t, st)
	if err := d.CreateNetwork(ctx, createReq(testNetID, map[string]any{"com.docker.network.bridge.name": "br-status"})); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(ctx, epReq(testNetID, testEpID, "10.1.0.2/24", "02:42:0a:01:00:02")); err != nil {
		t.Fatal(err)
	}
	live, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if live.Source != "plugin" || len(live.Networks) != 1 || len(live.Endpoints) != 1 || live.Cluster != nil {
		t.Fatalf("live status %+v", live)
	}
	n := live.Networks[0]
	if n.Mode != "bridge" || n.Bridge != "br-status" || n.Endpoints != 1 || len(n.Subnets) != 1 ||
		n.Subnets[0] != (SubnetStatus{Pool: "10.1.0.0/24", Gateway: "10.1.0.1"}) {
		t.Fatalf("network %+v", n)
	}
	if e := live.Endpoints[0]; e.IPv4 != "10.1.0.2/24" || e.MAC != "02:42:0a:01:00:02" || e.Network != testNetID {
		t.Fatalf("endpoint %+v", e)
	}
	off, err := StatusFromStore(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if off.Source != "state file" || off.HostID != live.HostID || off.HostID == "" {
		t.Fatalf("from store: source %q host %q; live host %q", off.Source, off.HostID, live.HostID)
	}
	if !reflect.DeepEqual(off.Networks, live.Networks) || !reflect.DeepEqual(off.Endpoints, live.Endpoints) || !reflect.DeepEqual(off.Pools, live.Pools) {
		t.Fatalf("state file and plugin differ:\n%+v\n%+v", off, live)
	}
}

func TestPoolSize(t *testing.T) {
	for _, c := range []struct {
		id   string
		want float64
	}{{"10.1.0.0/24", 256}, {"fd00::/64", 1 << 64}} {
		if got := buildStatus("x", nil, nil, []ipam.Pool{{ID: c.id, Prefix: netip.MustParsePrefix(c.id)}}, nil, nil).Pools[0].Size; got != c.want {
			t.Errorf("%s: size %v, want %v", c.id, got, c.want)
		}
	}
}

func TestParseMetricsAddr(t *testing.T) {
	for _, c := range []struct {
		in, network, addr, err string
	}{
		{"", "", "", ""},
		{"127.0.0.1:9323", "tcp", "127.0.0.1:9323", ""},
		{"[::1]:9323", "tcp", "[::1]:9323", ""},
		{":9323", "tcp", ":9323", ""},
		{"localhost:9323", "tcp", "localhost:9323", ""},
		{"unix:///run/weft-metrics.sock", "unix", "/run/weft-metrics.sock", ""},
		{"unix://run/weft.sock", "", "", "absolute"},
		{"unix:///" + strings.Repeat("x", 120), "", "", "longer than"},
		{"http://127.0.0.1:9323", "", "", "only scheme"},
		{"127.0.0.1", "", "", "neither host:port"},
		{"127.0.0.1:0", "", "", "port must be"},
		{"127.0.0.1:http", "", "", "port must be"},
		{"metrics.example.com:9323", "", "", "IP address or localhost"},
	} {
		got, err := ParseMetricsAddr(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "WEFT_METRICS_ADDR")):
			t.Errorf("%q: error %v, want one naming WEFT_METRICS_ADDR and saying %q", c.in, err, c.err)
		case c.err == "" && (got.Network != c.network || got.Address != c.addr):
			t.Errorf("%q: %+v, want %s %s", c.in, got, c.network, c.addr)
		}
	}
	if _, err := ParseSettings(nil, envOf(map[string]string{"WEFT_METRICS_ADDR": "nonsense"}), nil); err == nil {
		t.Error("ParseSettings took a bad WEFT_METRICS_ADDR")
	}
	s, err := ParseSettings([]string{"--metrics-addr", "127.0.0.1:9323"}, envOf(nil), nil)
	if err != nil || s.Metrics.Network != "tcp" {
		t.Errorf("--metrics-addr: %+v %v", s.Metrics, err)
	}
}

// TestCheckKernelReportsWithoutRepairing: the doctor's route runs the
// modes' checks and repairs nothing.
func TestCheckKernelReportsWithoutRepairing(t *testing.T) {
	ctx := context.Background()
	d, m := startDriver(t, memstore.New())
	kc, err := d.CheckKernel(ctx)
	if err != nil || kc.Missing["bridge"] != "" || len(kc.Errors) != 0 {
		t.Fatalf("clean kernel: %+v %v", kc, err)
	}
	m.mu.Lock()
	m.damage = "WEFT-FORWARD flushed"
	m.calls = nil
	m.mu.Unlock()
	if kc, err = d.CheckKernel(ctx); err != nil || kc.Missing["bridge"] != "WEFT-FORWARD flushed" {
		t.Fatalf("damaged kernel: %+v %v", kc, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.Contains(m.calls, "Repair") {
		t.Fatalf("CheckKernel repaired: %v", m.calls)
	}
}
