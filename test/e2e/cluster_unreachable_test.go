//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterStoreUnreachableFromStart: a weft whose cluster store
// (WEFT_STORE) has never answered starts anyway; bridge networks work in
// full (containers, pings, a published port, a weft restart); a macvlan
// network on weft's IPAM, which needs the store, is refused at once with an
// error naming the store; nothing is left behind.
func TestClusterStoreUnreachableFromStart(t *testing.T) {
	requireSuite(t)
	if cfg.plugin != "legacy" {
		t.Skipf("WEFT_E2E_PLUGIN=%s: this test gives weft WEFT_STORE through the environment of the legacy weft process, which a managed plugin does not get", cfg.plugin)
	}
	// A socket path nothing listens on: every dial fails at once.
	dead := "unix://" + filepath.Join(cfg.dir, "no-etcd-here.sock")
	h := newHost(t, "cludead", hostOptions{weftEnv: []string{"WEFT_STORE=etcd://" + dead}})

	h.CreateNetwork(t, "dead-br", "--subnet", "10.232.0.0/24")
	h.Run(t, "dead-a", "--network", "dead-br")
	h.Run(t, "dead-b", "--network", "dead-br")
	h.AssertPing(t, "dead-a", h.ContainerIP(t, "dead-b", "dead-br").String())

	h.KillWeft(t)
	h.StartWeft(t)
	h.Run(t, "dead-c", "--network", "dead-br")
	h.AssertPing(t, "dead-c", h.ContainerIP(t, "dead-a", "dead-br").String())

	start := time.Now()
	_, stderr, err := h.DockerErr("network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver(),
		"-o", "mode=macvlan", "--subnet", "10.233.0.0/24", "dead-lan")
	took := time.Since(start)
	if err == nil {
		h.Docker(t, "network", "rm", "dead-lan")
		t.Fatal("a macvlan network on weft's IPAM was created although its cluster store never answered")
	}
	if !strings.Contains(stderr, "cluster store") || !strings.Contains(stderr, dead) {
		t.Errorf("refusal %q does not name the cluster store %s", stderr, dead)
	}
	if took > 10*time.Second {
		t.Errorf("the refusal took %v: weft should answer at once when it has no connection", took)
	}
	t.Logf("macvlan network refused after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))
}
