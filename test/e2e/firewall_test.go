//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repairDeadline bounds how long the test waits for weft to undo damage:
// weft checks every 2s (the promise is "within 5 seconds", measured by
// scripts/bench.sh); on a loaded 2-core machine the test allows more before
// it calls the promise broken.
const repairDeadline = 30 * time.Second

// TestFirewallRepairedAfterFlush: what a firewall reload, an "iptables -F"
// or an "ipset flush" does to weft's rules is undone by weft on its own,
// without a restart: containers on one network talk again, and the networks
// are isolated again. The log says what was found and that it was restored.
func TestFirewallRepairedAfterFlush(t *testing.T) {
	h := newHost(t, "fwrep", hostOptions{})
	h.CreateNetwork(t, "r-a")
	h.CreateNetwork(t, "r-b")
	h.Run(t, "r-a1", "--network", "r-a")
	h.Run(t, "r-a2", "--network", "r-a")
	h.Run(t, "r-b1", "--network", "r-b")
	a2 := h.ContainerIP(t, "r-a2", "r-a").String()
	b1 := h.ContainerIP(t, "r-b1", "r-b").String()
	h.AssertPing(t, "r-a1", a2)
	h.AssertNoPings(t, [2]string{"r-a1", b1}, [2]string{"r-b1", a2})

	ipt := weftIptables(t, h)
	for _, d := range []struct {
		name string
		argv []string
	}{
		{"iptables -F WEFT-FORWARD", []string{ipt, "-F", "WEFT-FORWARD"}},
		{"iptables -F (all of the filter table)", []string{ipt, "-F"}},
		{"ipset flush", []string{"ipset", "flush"}},
	} {
		t.Run(strings.ReplaceAll(d.name, " ", "_"), func(t *testing.T) {
			h.NS(t, d.argv...)
			start := time.Now()
			// The flush took effect: same-network traffic is down (the
			// FORWARD policy is DROP) until weft puts its rules back. On a
			// busy machine weft may be faster than this first probe.
			var took time.Duration
			for {
				if _, err := h.pingOnce("r-a1", a2, 1, 1); err == nil {
					took = time.Since(start)
					break
				}
				if time.Since(start) > repairDeadline {
					t.Fatalf("after %s, r-a1 still cannot reach r-a2 after %s", d.name, repairDeadline)
				}
			}
			t.Logf("after %s, same-network traffic was back within %s", d.name, took.Round(100*time.Millisecond))
			h.AssertNoPings(t, [2]string{"r-a1", b1}, [2]string{"r-b1", a2})
		})
	}
	b, err := os.ReadFile(filepath.Join(h.Dir, "weft.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "weft's kernel state restored"); n < 3 {
		t.Errorf("weft logged %d restorations, want one per damage (3)", n)
	}
}

// weftIptables is the iptables program whose tables hold weft's rules on h
// (weft follows dockerd's back-end).
func weftIptables(t *testing.T, h *Host) string {
	t.Helper()
	for _, bin := range []string{"iptables-nft", "iptables-legacy"} {
		if out, err := h.ns(bin, "-S", "WEFT-FORWARD"); err == nil && strings.Contains(out, "-A WEFT-FORWARD") {
			return bin
		}
	}
	t.Fatal("no iptables back-end holds weft's WEFT-FORWARD chain")
	return ""
}
