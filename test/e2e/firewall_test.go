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

// TestFirewallUpgradeFromPerNetworkRules: a host whose weft kept per-network
// rules (WEFT_FIREWALL=per-network, as every weft before the fixed rules did)
// comes up, after a restart with the default, with the fixed rules and none
// of the old ones, and its running containers keep talking and stay
// isolated throughout.
func TestFirewallUpgradeFromPerNetworkRules(t *testing.T) {
	h := newHost(t, "fwupg", hostOptions{weftEnv: []string{"WEFT_FIREWALL=per-network"}})
	h.CreateNetwork(t, "u-a")
	h.CreateNetwork(t, "u-b")
	h.Run(t, "u-a1", "--network", "u-a")
	h.Run(t, "u-a2", "--network", "u-a")
	h.Run(t, "u-b1", "--network", "u-b")
	a2 := h.ContainerIP(t, "u-a2", "u-a").String()
	b1 := h.ContainerIP(t, "u-b1", "u-b").String()
	h.AssertPing(t, "u-a1", a2)
	ipt := weftIptables(t, h)
	if out := h.NS(t, ipt+"-save"); !strings.Contains(out, ":WEFT-ICC") || !strings.Contains(out, "weft:") {
		t.Fatalf("WEFT_FIREWALL=per-network did not make per-network rules:\n%s", out)
	}

	h.weftEnv = nil
	h.restartWeftWith(t, cfg.weftBin)
	h.AssertPing(t, "u-a1", a2)
	h.AssertNoPings(t, [2]string{"u-a1", b1}, [2]string{"u-b1", a2})
	out := h.NS(t, ipt+"-save")
	for _, old := range []string{":WEFT-ICC", ":WEFT-ISOLATION-1", ":WEFT-ISOLATION-2", ":WEFT-BRIDGE", ":WEFT-INGRESS", "weft:"} {
		if strings.Contains(out, old) {
			t.Errorf("%s is left after the upgrade:\n%s", old, out)
		}
	}
	if !strings.Contains(out, "--match-set weft-net4") {
		t.Errorf("the fixed rules are not in place after the upgrade:\n%s", out)
	}
	// New networks after the upgrade work beside the old ones.
	h.CreateNetwork(t, "u-c")
	h.Run(t, "u-c1", "--network", "u-c")
	h.Run(t, "u-c2", "--network", "u-c")
	h.AssertPing(t, "u-c1", h.ContainerIP(t, "u-c2", "u-c").String())
	h.AssertNoPings(t, [2]string{"u-c1", a2})
}
