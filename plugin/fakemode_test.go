package plugin

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/weftnet/weft/dataplane"
)

// fakeMode is a recording dataplane.Mode that also checks lifecycle
// invariants: endpoints only on existing networks, no network deleted while
// it still has endpoints, idempotent creates and deletes.
type fakeMode struct {
	mu    sync.Mutex
	nets  map[string]dataplane.Network
	eps   map[string]dataplane.Endpoint
	calls []string
	// fail makes the named method fail once.
	fail map[string]error
	// reconciled records the last Reconcile input.
	reconciledNets []string
	reconciledEps  []string
	// gone lists endpoints whose kernel link has disappeared; detached
	// those whose container side is back in the host namespace.
	gone, detached map[string]bool
	// damage is what Check reports missing ("" = nothing); Repair clears
	// it unless stubborn is set.
	damage   string
	stubborn bool
}

var (
	_ dataplane.Mode           = (*fakeMode)(nil)
	_ dataplane.EndpointProber = (*fakeMode)(nil)
	_ dataplane.Checker        = (*fakeMode)(nil)
)

func (f *fakeMode) Check(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.damage, f.record("Check")
}

func (f *fakeMode) Repair(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stubborn {
		f.damage = ""
	}
	return f.record("Repair")
}

func newFakeMode() *fakeMode {
	return &fakeMode{nets: map[string]dataplane.Network{}, eps: map[string]dataplane.Endpoint{}, fail: map[string]error{}, gone: map[string]bool{}, detached: map[string]bool{}}
}

func (f *fakeMode) record(call string) error {
	f.calls = append(f.calls, call)
	if err, ok := f.fail[call]; ok {
		delete(f.fail, call)
		return err
	}
	return nil
}

func (f *fakeMode) CreateNetwork(_ context.Context, n dataplane.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("CreateNetwork"); err != nil {
		return err
	}
	f.nets[n.ID] = n
	return nil
}

func (f *fakeMode) DeleteNetwork(_ context.Context, n dataplane.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("DeleteNetwork"); err != nil {
		return err
	}
	for _, ep := range f.eps {
		if ep.NetworkID == n.ID {
			return fmt.Errorf("fake: network %s deleted while endpoint %s exists", n.ID, ep.ID)
		}
	}
	delete(f.nets, n.ID)
	return nil
}

func (f *fakeMode) CreateEndpoint(_ context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("CreateEndpoint"); err != nil {
		return err
	}
	if _, ok := f.nets[n.ID]; !ok {
		return fmt.Errorf("fake: endpoint %s on unknown network %s", ep.ID, n.ID)
	}
	f.eps[ep.ID] = ep
	return nil
}

func (f *fakeMode) DeleteEndpoint(_ context.Context, _ dataplane.Network, ep dataplane.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("DeleteEndpoint"); err != nil {
		return err
	}
	delete(f.eps, ep.ID)
	return nil
}

func (f *fakeMode) Join(_ context.Context, n dataplane.Network, ep dataplane.Endpoint) (dataplane.JoinInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Join"); err != nil {
		return dataplane.JoinInfo{}, err
	}
	if _, ok := f.eps[ep.ID]; !ok {
		return dataplane.JoinInfo{}, fmt.Errorf("fake: join of unknown endpoint %s", ep.ID)
	}
	info := dataplane.JoinInfo{SrcName: "wc" + dataplane.ShortID(ep.ID), DstPrefix: "eth"}
	if len(n.IPv4) > 0 && !n.Internal {
		info.Gateway = n.IPv4[0].Gateway
		info.Routes = []dataplane.Route{{Destination: netip.MustParsePrefix("10.99.0.0/16"), Type: dataplane.RouteNextHop, NextHop: n.IPv4[0].Gateway}}
	}
	return info, nil
}

func (f *fakeMode) Leave(context.Context, dataplane.Network, dataplane.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("Leave")
}

func (f *fakeMode) Reconcile(_ context.Context, nets []dataplane.Network, eps []dataplane.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconciledNets, f.reconciledEps = nil, nil
	f.nets = map[string]dataplane.Network{}
	f.eps = map[string]dataplane.Endpoint{}
	for _, n := range nets {
		f.reconciledNets = append(f.reconciledNets, n.ID)
		f.nets[n.ID] = n
	}
	for _, ep := range eps {
		f.reconciledEps = append(f.reconciledEps, ep.ID)
		f.eps[ep.ID] = ep
	}
	return f.record("Reconcile")
}

func (f *fakeMode) EndpointState(_ context.Context, _ dataplane.Network, ep dataplane.Endpoint) (dataplane.EndpointState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.gone[ep.ID]:
		return dataplane.EndpointGone, nil
	case f.detached[ep.ID]:
		return dataplane.EndpointDetached, nil
	}
	return dataplane.EndpointInUse, nil
}
