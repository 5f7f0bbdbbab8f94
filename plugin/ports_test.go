package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
)

// fakePublisher is a fakeMode that publishes ports: host port 0 becomes
// 40000+n, every binding one PublishedPort on 0.0.0.0 (or its HostIP).
type fakePublisher struct {
	*fakeMode
	pmu        sync.Mutex
	published  map[string][]dataplane.PublishedPort // by endpoint
	unpublish  [][]dataplane.PublishedPort          // every Unpublish's ports
	reconciled []dataplane.EndpointPorts
	failPub    error
	next       uint16
}

var _ dataplane.PortPublisher = (*fakePublisher)(nil)

func newFakePublisher() *fakePublisher {
	return &fakePublisher{fakeMode: newFakeMode(), published: map[string][]dataplane.PublishedPort{}, next: 40000}
}

func (f *fakePublisher) Publish(_ context.Context, _ dataplane.Network, ep dataplane.Endpoint, bs []dataplane.PortBinding) ([]dataplane.PublishedPort, error) {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	if f.failPub != nil {
		return nil, f.failPub
	}
	var out []dataplane.PublishedPort
	for _, b := range bs {
		hp := b.HostPort
		if hp == 0 {
			f.next++
			hp = f.next
		}
		host := b.HostIP
		if !host.IsValid() {
			host = netip.IPv4Unspecified()
		}
		out = append(out, dataplane.PublishedPort{Proto: b.Proto, HostIP: host, HostPort: hp, ContainerIP: ep.IPv4.Addr(), ContainerPort: b.Port})
	}
	f.published[ep.ID] = append(f.published[ep.ID], out...)
	return out, nil
}

func (f *fakePublisher) Unpublish(_ context.Context, _ dataplane.Network, ep dataplane.Endpoint, ps []dataplane.PublishedPort) error {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	f.unpublish = append(f.unpublish, ps)
	var keep []dataplane.PublishedPort
	for _, p := range f.published[ep.ID] {
		found := false
		for _, q := range ps {
			found = found || p == q
		}
		if !found {
			keep = append(keep, p)
		}
	}
	f.published[ep.ID] = keep
	return nil
}

func (f *fakePublisher) ReconcilePorts(_ context.Context, eps []dataplane.EndpointPorts) error {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	f.reconciled = eps
	return nil
}

// startPublishing starts a driver over st whose bridge mode is a
// fakePublisher; Start reconciles the published ports.
func startPublishing(t *testing.T, st store.Store) (*Driver, *fakePublisher) {
	t.Helper()
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	pools, _ := ipam.ParseDefaultPools(ipam.DefaultPoolsSetting)
	m := newFakePublisher()
	if err := d.Start(context.Background(), Deps{Store: st, IPAM: ipam.New(pools), Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m}}); err != nil {
		t.Fatal(err)
	}
	return d, m
}

// portmap builds PEC options from Docker's JSON, decoded as the server does.
func portmap(t *testing.T, js string) map[string]any {
	t.Helper()
	var opts map[string]any
	if err := json.Unmarshal([]byte(`{"`+keyPortMap+`":`+js+`}`), &opts); err != nil {
		t.Fatal(err)
	}
	return opts
}

func pec(netID, epID string, opts map[string]any) *network.ProgramExternalConnectivityRequest {
	return &network.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: epID, Options: opts}
}

func TestParsePortBindings(t *testing.T) {
	for _, tc := range []struct {
		js, want, err string
	}{
		{`[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]`, "*:8080->80/tcp", ""},
		{`[{"Proto":17,"Port":53,"HostIP":"127.0.0.1","HostPort":5353,"HostPortEnd":0}]`, "127.0.0.1:5353->53/udp", ""},
		{`[{"Proto":132,"Port":3868,"HostIP":"::","HostPort":0,"HostPortEnd":0}]`, ":::0->3868/sctp", ""},
		{`[{"Proto":6,"Port":80,"HostPort":8000,"HostPortEnd":8010}]`, "*:8000-8010->80/tcp", ""},
		{`[{"Proto":6,"Port":80,"HostIP":"::ffff:192.0.2.1","HostPort":80}]`, "192.0.2.1:80->80/tcp", ""},
		{`[]`, "", ""},
		{`null`, "", ""},
		{`[{"Proto":1,"Port":80}]`, "", "tcp, udp and sctp ports only"},
		{`[{"Proto":6,"Port":0,"HostPort":80}]`, "", "container port 0"},
		{`[{"Proto":6,"Port":80,"HostPort":90,"HostPortEnd":80}]`, "", "range 90-80 is not valid"},
		{`[{"Proto":6,"Port":80,"HostPort":70000}]`, "", "between 0 and 65535"},
		{`[{"Proto":6,"Port":80,"HostIP":"localhost"}]`, "", `host address "localhost"`},
		{`{"Proto":6}`, "", "not a list of port bindings"},
	} {
		got, err := parsePortBindings(portmap(t, tc.js))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error mentioning %q", tc.js, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.js, err)
			continue
		}
		var s []string
		for _, b := range got {
			s = append(s, b.String())
		}
		if strings.Join(s, " ") != tc.want {
			t.Errorf("%s: %q, want %q", tc.js, strings.Join(s, " "), tc.want)
		}
	}
	opts := portmap(t, `[{"Proto":6,"Port":80}]`)
	opts[keyNoProxy6to4] = true
	if got, _ := parsePortBindings(opts); len(got) != 1 || !got[0].NoIPv6 {
		t.Errorf("no_proxy_6to4 not carried: %+v", got)
	}
}

// withEndpoint creates the test network and an endpoint on it.
func withEndpoint(t *testing.T, d *Driver, epID, addr string) {
	t.Helper()
	ctx := context.Background()
	if _, ok := d.nets[testNetID]; !ok {
		if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.CreateEndpoint(ctx, epReq(testNetID, epID, addr, "")); err != nil {
		t.Fatal(err)
	}
}

func record(t *testing.T, st store.Store, epID string) *portsRecord {
	t.Helper()
	raw, ok, err := st.Get(context.Background(), bucketPorts, epID)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	var r portsRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestProgramAndRevokePorts(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startPublishing(t, st)
	withEndpoint(t, d, testEpID, "10.1.0.2/24")
	opts := portmap(t, `[{"Proto":6,"Port":80,"HostPort":8080,"HostPortEnd":8080},{"Proto":17,"Port":53,"HostPort":0}]`)
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, opts)); err != nil {
		t.Fatal(err)
	}
	rec := record(t, st, testEpID)
	if rec == nil || len(rec.Published) != 2 || rec.Published[1].HostPort != 40001 {
		t.Fatalf("record after PEC: %+v", rec)
	}
	// A repeat publishes nothing new.
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, opts)); err != nil {
		t.Fatal(err)
	}
	if n := len(m.published[testEpID]); n != 2 {
		t.Fatalf("repeat PEC: %d ports published, want 2", n)
	}
	for range 2 {
		if err := d.RevokeExternalConnectivity(ctx, &network.RevokeExternalConnectivityRequest{NetworkID: testNetID, EndpointID: testEpID}); err != nil {
			t.Fatal(err)
		}
	}
	if len(m.unpublish) != 1 || !reflect.DeepEqual(m.unpublish[0], rec.Published) {
		t.Fatalf("Unpublish calls %v, want exactly %v", m.unpublish, rec.Published)
	}
	if record(t, st, testEpID) != nil || len(m.published[testEpID]) != 0 {
		t.Fatal("ports left after revoke")
	}
	// No bindings: nothing to do, nothing recorded.
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, portmap(t, `[]`))); err != nil {
		t.Fatal(err)
	}
	if record(t, st, testEpID) != nil {
		t.Fatal("a record for no ports")
	}
}

func TestProgramPortsReplaces(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startPublishing(t, st)
	withEndpoint(t, d, testEpID, "10.1.0.2/24")
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, portmap(t, `[{"Proto":6,"Port":80,"HostPort":8080}]`))); err != nil {
		t.Fatal(err)
	}
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, portmap(t, `[{"Proto":6,"Port":80,"HostPort":9090}]`))); err != nil {
		t.Fatal(err)
	}
	if got := m.published[testEpID]; len(got) != 1 || got[0].HostPort != 9090 {
		t.Fatalf("published %v, want only 9090", got)
	}
	if rec := record(t, st, testEpID); rec == nil || rec.Published[0].HostPort != 9090 {
		t.Fatalf("record %+v", rec)
	}
}

func TestProgramPortsFailuresLeaveNothing(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d, m := startPublishing(t, st)
	withEndpoint(t, d, testEpID, "10.1.0.2/24")
	opts := portmap(t, `[{"Proto":6,"Port":80,"HostPort":8080}]`)

	m.failPub = fmt.Errorf("host port 0.0.0.0:8080/tcp is already in use: %w", dataplane.ErrPortInUse)
	err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, opts))
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("PEC with a taken port: %v", err)
	}
	m.failPub = nil

	st.FailNext(errors.New("disk full"))
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, opts)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("PEC with a store failure: %v", err)
	}
	if len(m.published[testEpID]) != 0 || record(t, st, testEpID) != nil {
		t.Fatalf("failed PEC left ports %v", m.published[testEpID])
	}

	// Revoke whose record cannot be deleted: the ports are published again,
	// so kernel and record still agree.
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, opts)); err != nil {
		t.Fatal(err)
	}
	st.FailNext(errors.New("disk full"))
	if err := d.RevokeExternalConnectivity(ctx, &network.RevokeExternalConnectivityRequest{NetworkID: testNetID, EndpointID: testEpID}); err == nil {
		t.Fatal("revoke with a store failure succeeded")
	}
	if rec := record(t, st, testEpID); rec == nil || !reflect.DeepEqual(m.published[testEpID], rec.Published) {
		t.Fatalf("after a failed revoke: kernel %v, record %+v", m.published[testEpID], rec)
	}
}

func TestProgramPortsUnknownOrNotPublishing(t *testing.T) {
	ctx := context.Background()
	d, _ := startDriver(t, memstore.New()) // a mode without PortPublisher
	withEndpoint(t, d, testEpID, "10.1.0.2/24")
	opts := portmap(t, `[{"Proto":6,"Port":80,"HostPort":8080}]`)
	err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, opts))
	if err == nil || !strings.Contains(err.Error(), "cannot publish ports") {
		t.Fatalf("PEC on a mode that cannot publish: %v", err)
	}
	if err := d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID, nil)); err != nil {
		t.Fatalf("PEC without ports on such a mode: %v", err)
	}
	err = d.ProgramExternalConnectivity(ctx, pec(testNetID, testEpID2, opts))
	if !errors.Is(err, errNotFound) {
		t.Fatalf("PEC for an unknown endpoint: %v", err)
	}
	if err := d.RevokeExternalConnectivity(ctx, &network.RevokeExternalConnectivityRequest{NetworkID: testNetID, EndpointID: testEpID2}); err != nil {
		t.Fatalf("revoke of an unknown endpoint: %v", err)
	}
}

// TestPortsSurviveRestart: a new driver over the same store hands the mode
// the recorded ports, exactly, and drops records of endpoints it no longer
// knows.
func TestPortsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	d1, _ := startPublishing(t, st)
	withEndpoint(t, d1, testEpID, "10.1.0.2/24")
	withEndpoint(t, d1, testEpID2, "10.1.0.3/24")
	for _, ep := range []string{testEpID, testEpID2} {
		if err := d1.ProgramExternalConnectivity(ctx, pec(testNetID, ep, portmap(t, `[{"Proto":6,"Port":80,"HostPort":0}]`))); err != nil {
			t.Fatal(err)
		}
	}
	want := record(t, st, testEpID).Published
	// The second endpoint's DeleteEndpoint arrives without a revoke.
	if err := d1.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: testNetID, EndpointID: testEpID2}); err != nil {
		t.Fatal(err)
	}

	_, m2 := startPublishing(t, st)
	if len(m2.reconciled) != 1 || m2.reconciled[0].Endpoint.ID != testEpID || !reflect.DeepEqual(m2.reconciled[0].Ports, want) ||
		m2.reconciled[0].Network.ID != testNetID {
		t.Fatalf("ReconcilePorts got %+v, want endpoint %s with %v", m2.reconciled, testEpID, want)
	}
	if record(t, st, testEpID2) != nil {
		t.Fatal("record of a deleted endpoint kept")
	}
}

func TestWirePublishing(t *testing.T) {
	w, _ := serveWire(t)
	w.ok("/NetworkDriver.CreateNetwork", `{"NetworkID":"`+wireNet+`","Options":{"com.docker.network.generic":{}},
		"IPv4Data":[{"AddressSpace":"weft-local","Pool":"10.1.0.0/24","Gateway":"10.1.0.1/24"}],"IPv6Data":[]}`)
	w.ok("/NetworkDriver.CreateEndpoint", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`","Interface":{"Address":"10.1.0.2/24"},"Options":{}}`)
	w.fails("/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"`+wireNet+`","EndpointID":"`+wireEp+`",
		"Options":{"com.docker.network.portmap":[{"Proto":1,"Port":80}]}}`, "tcp, udp and sctp")
}
