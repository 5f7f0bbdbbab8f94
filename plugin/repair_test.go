package plugin

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/weftnet/weft/store/memstore"
)

// TestRepairWhatCheckFindsMissing: a mode that reports something missing is
// repaired (never reconciled: that would remove another instance's
// objects); one that reports nothing is left alone.
func TestRepairWhatCheckFindsMissing(t *testing.T) {
	ctx := context.Background()
	d, m := startDriver(t, memstore.New())
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	m.calls = nil
	if !d.repairOnce(ctx) {
		t.Fatal("repairOnce failed with nothing missing")
	}
	if slices.Contains(m.calls, "Repair") {
		t.Fatalf("repaired with nothing missing: %v", m.calls)
	}

	m.mu.Lock()
	m.damage = "WEFT-FORWARD flushed"
	m.mu.Unlock()
	m.calls = nil
	if !d.repairOnce(ctx) {
		t.Fatal("repairOnce failed")
	}
	if !slices.Equal(m.calls, []string{"Check", "Repair", "Check"}) {
		t.Fatalf("calls %v; want Check, Repair, Check", m.calls)
	}

	// A repair that does not take is reported (the repairer then backs off).
	m.mu.Lock()
	m.damage, m.stubborn = "iptables broken", true
	m.mu.Unlock()
	if d.repairOnce(ctx) {
		t.Fatal("repairOnce succeeded although Check still finds something missing")
	}
}

// TestRunRepairerRepairsAndStops: the repairer notices within its interval
// and ends with its context.
func TestRunRepairerRepairsAndStops(t *testing.T) {
	d, m := startDriver(t, memstore.New())
	d.deps.RepairInterval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.RunRepairer(ctx) }()
	m.mu.Lock()
	m.damage = "ipset flushed"
	m.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		fixed := m.damage == ""
		m.mu.Unlock()
		if fixed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the repairer did not repair within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunRepairer did not return after its context ended")
	}
}
