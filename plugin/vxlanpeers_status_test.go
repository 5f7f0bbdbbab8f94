package plugin

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/store/memstore"
)

// TestPeerStatusAndStorePeers: weft status shows each peer host with when
// it was last seen and whether its entries were programmed (and why not);
// StorePeers, the doctor's reading of the store, selects exactly the peers
// the running weft programs.
func TestPeerStatusAndStorePeers(t *testing.T) {
	cl := memstore.New()
	a := startVxHost(t, "a", "192.0.2.1", cl, 2*time.Second)
	b := startVxHost(t, "b", "192.0.2.2", cl, 2*time.Second)
	const subnet = "10.90.0.0/24"
	if err := a.vxNetwork(testNetID, subnet, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.vxNetwork(testNetID2, subnet, nil); err != nil {
		t.Fatal(err)
	}
	a.container(t, testNetID, epID(1))
	ipB := b.container(t, testNetID2, epID(2))
	peerB := func() PeerStatus {
		s, err := a.d.Status(context.Background())
		if err != nil || s.Cluster == nil {
			t.Fatalf("status: %v", err)
		}
		for _, p := range s.Cluster.Peers {
			if p.VTEP == "192.0.2.2" {
				if p.LastSeen.After(s.At) {
					t.Errorf("peer last seen %s, after the status was taken (%s)", p.LastSeen, s.At)
				}
				return p
			}
		}
		return PeerStatus{}
	}
	eventually(t, "a's status shows b programmed", func() bool {
		p := peerB()
		return !p.LastSeen.IsZero() && p.Wanted == 1 && p.Programmed == 1 && p.ProgramError == ""
	})

	s, _ := a.d.Status(context.Background())
	vni := a.network(testNetID).Vxlan.VNI
	got, err := StorePeers(context.Background(), cl, s.HostID, netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	a.m.pmu.Lock()
	programmedA := a.m.peers[testNetID]
	a.m.pmu.Unlock()
	if len(got) != 1 || len(got[vni]) != 1 || got[vni][0].IPv4.String() != ipB || got[vni][0].MAC.String() != programmedA[0].MAC.String() {
		t.Errorf("StorePeers: %v, want b's one endpoint on vni %d, as a programs it (%v)", got, vni, programmedA)
	}

	// Programming fails: the status says so, with the error.
	a.m.pmu.Lock()
	a.m.failPeers = errors.New("the kernel said no")
	a.m.pmu.Unlock()
	b.container(t, testNetID2, strings.Repeat("e3", 32)) // a change makes a program again
	eventually(t, "a's status shows b not programmed", func() bool {
		p := peerB()
		return p.Wanted == 2 && p.Programmed == 0 && p.ProgramError == "the kernel said no"
	})
}
