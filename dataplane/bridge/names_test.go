package bridge

import (
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane"
)

func TestNamesFitAndAreDeterministic(t *testing.T) {
	for _, id := range []string{idA, idB, "tzr9fb5exsxtt9uckbqayl3z6" /* a swarm ID */} {
		br := DefaultName(id)
		if len(br) > dataplane.MaxLinkName || br != DefaultName(id) || !strings.HasPrefix(br, "weft-") {
			t.Errorf("DefaultName(%s) = %q", id, br)
		}
		if !defaultBridge.MatchString(br) {
			t.Errorf("DefaultName(%s) = %q is not recognised as weft's", id, br)
		}
		host, cont := VethNames(id)
		h2, c2 := VethNames(id)
		if host != h2 || cont != c2 {
			t.Errorf("VethNames(%s) not deterministic", id)
		}
		for _, name := range []string{host, cont} {
			if len(name) > dataplane.MaxLinkName || !vethName.MatchString(name) {
				t.Errorf("veth name %q: too long or not recognised as weft's", name)
			}
		}
		if host == cont {
			t.Errorf("host and container ends share the name %q", host)
		}
	}
	if a, _ := VethNames(idA); a != "wha1b2c3d4e5f6" {
		t.Errorf("host veth of %s = %q", idA, a)
	}
	if _, c := VethNames(idA); c != "wca1b2c3d4e5f6" {
		t.Errorf("container veth of %s = %q", idA, c)
	}
	if vethName.MatchString("veth1234567") || defaultBridge.MatchString("docker0") || defaultBridge.MatchString("br-0123456789") {
		t.Error("foreign names recognised as weft's")
	}
}

func TestBridgeMAC(t *testing.T) {
	m := bridgeMAC(idA)
	if len(m) != 6 || m[0]&1 != 0 || m[0]&2 == 0 {
		t.Fatalf("bridgeMAC = %s: want a locally administered unicast MAC", m)
	}
	if bridgeMAC(idA).String() != m.String() || bridgeMAC(idB).String() == m.String() {
		t.Fatal("bridgeMAC must be a function of the network ID")
	}
}
