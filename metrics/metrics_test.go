package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

// fakeSource answers Status with s, or err.
type fakeSource struct {
	s   *plugin.Status
	err error
}

func (f fakeSource) Status(context.Context) (*plugin.Status, error) { return f.s, f.err }

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape answered %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func requireLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("metrics lack the line %q", l)
		}
	}
}

func TestObserverAndStateGauges(t *testing.T) {
	m := New("1.2.3")
	m.WatchState(fakeSource{s: &plugin.Status{
		Networks: []plugin.NetworkStatus{
			{ID: "aaaaaaaaaaaaaaaa", Mode: "bridge"},
			{ID: "bbbbbbbbbbbbbbbb", Mode: "vxlan", VNI: 42, RemoteEndpoints: 3},
		},
		Endpoints: []plugin.EndpointStatus{{ID: "e1", Network: "aaaaaaaaaaaaaaaa"}, {ID: "e2", Network: "aaaaaaaaaaaaaaaa"}, {ID: "e3", Network: "bbbbbbbbbbbbbbbb"}},
		Pools:     []plugin.PoolStatus{{ID: "weft-local/10.1.0.0/24", Size: 256, Allocated: 3}},
		Cluster:   &plugin.ClusterStatus{Store: "etcd at http://e:2379", Connected: true, Peers: []plugin.PeerStatus{{Host: "h2"}, {Host: "h3"}}},
	}})
	m.Request("NetworkDriver.CreateNetwork", plugin.OutcomeOK, 3*time.Millisecond)
	m.Request("NetworkDriver.CreateNetwork", plugin.OutcomeFailed, time.Second)
	m.Reconciled("bridge", nil)
	m.Checked("bridge", false, nil)
	m.Checked("bridge", true, nil)
	m.Checked("vxlan", false, errors.New("iptables-save failed"))
	m.Repaired("bridge", nil)
	text := scrape(t, m)
	requireLines(t, text,
		`weft_build_info{version="1.2.3"} 1`,
		`weft_request_duration_seconds_count{outcome="ok",route="NetworkDriver.CreateNetwork"} 1`,
		`weft_request_duration_seconds_count{outcome="failed",route="NetworkDriver.CreateNetwork"} 1`,
		`weft_reconcile_total{mode="bridge",outcome="ok"} 1`,
		`weft_kernel_checks_total{mode="bridge",result="ok"} 1`,
		`weft_kernel_checks_total{mode="bridge",result="drift"} 1`,
		`weft_kernel_checks_total{mode="vxlan",result="failed"} 1`,
		`weft_repairs_total{mode="bridge",outcome="ok"} 1`,
		`weft_state_ready 1`,
		`weft_networks{mode="bridge"} 1`,
		`weft_networks{mode="macvlan"} 0`,
		`weft_networks{mode="vxlan"} 1`,
		`weft_endpoints{mode="bridge"} 2`,
		`weft_endpoints{mode="vxlan"} 1`,
		`weft_pool_size_addresses{pool="weft-local/10.1.0.0/24"} 256`,
		`weft_pool_allocated_addresses{pool="weft-local/10.1.0.0/24"} 3`,
		`weft_cluster_store_connected{store="etcd at http://e:2379"} 1`,
		`weft_cluster_peers 2`,
		`weft_vxlan_remote_endpoints{network="bbbbbbbbbbbb",vni="42"} 3`,
	)
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_") {
		t.Error("the Go runtime's or the process's metrics are missing")
	}
}

// A plugin that has not started (or cannot) reports not ready and no
// state gauges, instead of failing the scrape.
func TestNotReady(t *testing.T) {
	m := New("dev")
	m.WatchState(fakeSource{err: errors.New("weft is still starting")})
	text := scrape(t, m)
	requireLines(t, text, "weft_state_ready 0")
	if strings.Contains(text, "weft_networks{") {
		t.Error("state gauges reported although the status could not be read")
	}
}

// Two Metrics never share a registry: each counts its own.
func TestRegistriesAreSeparate(t *testing.T) {
	a, b := New("a"), New("b")
	a.Request("Plugin.Activate", plugin.OutcomeOK, time.Millisecond)
	if strings.Contains(scrape(t, b), "Plugin.Activate") {
		t.Fatal("a request observed on one Metrics shows on another")
	}
}

// flakyStore fails every call.
type flakyStore struct{ store.Store }

func (flakyStore) Apply(context.Context, ...store.Op) error { return errors.New("disk full") }

func TestStoreTimingAndErrors(t *testing.T) {
	m := New("dev")
	ctx := context.Background()
	s := m.Store(memstore.New())
	if err := s.Apply(ctx, store.Put("b", "k", []byte("v"))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "b", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := m.Store(flakyStore{memstore.New()}).Apply(ctx, store.Put("b", "k", nil)); err == nil {
		t.Fatal("the failing store's error was lost")
	}
	c := m.Cluster(memstore.New())
	if _, err := c.Create(ctx, store.Put("b", "k", []byte("v"))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, store.Put("b", "k", []byte("v"))); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	text := scrape(t, m)
	requireLines(t, text,
		`weft_store_operation_duration_seconds_count{op="apply",store="local"} 2`,
		`weft_store_operation_duration_seconds_count{op="get",store="local"} 1`,
		`weft_store_operation_duration_seconds_count{op="list",store="local"} 1`,
		`weft_store_errors_total{op="apply",store="local"} 1`,
		`weft_store_operation_duration_seconds_count{op="create",store="cluster"} 2`,
	)
	if strings.Contains(text, `weft_store_errors_total{op="create"`) {
		t.Error("a create that found its key taken counted as a store error")
	}
}

// A nil *Metrics (metrics off) does nothing and passes stores through.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.Request("x", "ok", 0)
	m.Reconciled("bridge", nil)
	m.Checked("bridge", true, nil)
	m.Repaired("bridge", nil)
	m.WatchState(fakeSource{})
	st := memstore.New()
	if m.Store(st) != store.Store(st) || m.Cluster(st) != store.Cluster(st) || m.Observer() != nil {
		t.Fatal("a nil Metrics changed what it was given")
	}
}

// Serve answers on a root-only unix socket and removes it when ctx ends.
func TestServeOnUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "wm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "metrics.sock")
	addr, err := plugin.ParseMetricsAddr("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}
	m := New("dev")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Serve(ctx, l, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://weft/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), "weft_build_info") {
		t.Fatalf("metrics over the socket: %s", body)
	}
	cancel()
	<-done
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
