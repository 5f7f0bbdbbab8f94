package plugin

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/weftnet/weft/store/memstore"
)

// TestShortIDIndex: the short-ID twin check looks in an index rather than
// at every endpoint (issue 12); it must refuse exactly what a scan of every
// endpoint would, whichever way endpoints went away.
func TestShortIDIndex(t *testing.T) {
	ctx := context.Background()
	d, _ := startDriver(t, memstore.New())
	if err := d.CreateNetwork(ctx, createReq(testNetID, nil)); err != nil {
		t.Fatal(err)
	}
	twin := func(c string) string { return testEpID[:12] + strings.Repeat(c, len(testEpID)-12) }
	create := func(id, addr string) error {
		_, err := d.CreateEndpoint(ctx, epReq(testNetID, id, addr, ""))
		return err
	}
	refused := func(id, by string) {
		t.Helper()
		err := create(id, "10.1.0.9/24")
		if err == nil || !strings.Contains(err.Error(), "same 12 characters as endpoint "+by) {
			t.Fatalf("CreateEndpoint %s: %v, want a refusal naming %s", id, err, by)
		}
	}
	del := func(id string) {
		t.Helper()
		if err := d.DeleteEndpoint(ctx, &network.DeleteEndpointRequest{NetworkID: testNetID, EndpointID: id}); err != nil {
			t.Fatal(err)
		}
	}

	if err := create(testEpID, "10.1.0.2/24"); err != nil {
		t.Fatal(err)
	}
	refused(twin("0"), testEpID)
	// A repeat of the same CreateEndpoint is not a twin of itself.
	if err := create(testEpID, "10.1.0.2/24"); err != nil {
		t.Fatal(err)
	}
	// Deleted through DeleteEndpoint: the prefix is free again.
	del(testEpID)
	if err := create(twin("1"), "10.1.0.3/24"); err != nil {
		t.Fatal(err)
	}
	refused(testEpID, twin("1"))
	// Removed elsewhere (as orphans.go and DeleteNetwork do): the index
	// entry is stale and must not refuse.
	d.mu.Lock()
	delete(d.eps, twin("1"))
	d.mu.Unlock()
	if err := create(twin("2"), "10.1.0.4/24"); err != nil {
		t.Fatal(err)
	}
	// Two twins held at once (a store written before they were refused):
	// once the indexed one is gone, the other one still refuses.
	d.mu.Lock()
	rec := *d.eps[twin("2")]
	rec.Endpoint.ID = twin("3")
	d.eps[twin("3")] = &rec
	delete(d.eps, twin("2"))
	d.mu.Unlock()
	refused(twin("4"), twin("3"))
	// Many endpoints removed elsewhere: the index is rebuilt, and stays
	// right.
	for i := range 200 {
		id := strings.Repeat("0", 9) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + strings.Repeat("5", len(testEpID)-11)
		if err := create(id, ""); err != nil {
			t.Fatal(err)
		}
		d.mu.Lock()
		delete(d.eps, id)
		d.mu.Unlock()
	}
	if n := len(d.epShort); n > 2*len(d.eps)+64+1 {
		t.Errorf("index holds %d entries for %d endpoints", n, len(d.eps))
	}
	refused(twin("5"), twin("3"))
}
