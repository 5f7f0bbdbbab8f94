//go:build bench

package main

import (
	"math"
	"testing"
)

func TestParseWeftCalls(t *testing.T) {
	log := `time=2026-12-01T17:40:58.311Z level=INFO msg="pool reserved" pool=weft-local/10.64.1.0/24
time=2026-12-01T17:40:58.311Z level=DEBUG msg=request path=/IpamDriver.RequestPool status=200 took=1.413788ms
time=2026-12-01T17:40:58.312Z level=DEBUG msg=request path=/IpamDriver.RequestAddress status=200 took=686.065µs
time=2026-12-01T17:40:58.313Z level=DEBUG msg=request path=/IpamDriver.RequestAddress status=200 took=314µs
time=2026-12-01T17:40:58.314Z level=INFO msg="network created" network=972cbb2c3d01 mode=bridge
time=2026-12-01T17:40:58.314Z level=DEBUG msg=request path=/NetworkDriver.CreateNetwork status=200 took=1.5s
time=2026-12-01T17:40:58.315Z level=DEBUG msg=request path=/NetworkDriver.CreateNetwork status=200 took=garbage
time=2026-12-01T17:40:58.316Z level=DEBUG msg=request path=/IpamDriver.RequestPool status=200 took=1.4`
	got := parseWeftCalls(log)
	want := map[string]float64{"IpamDriver.RequestPool": 1.413788, "IpamDriver.RequestAddress": 1.000065, "NetworkDriver.CreateNetwork": 1500}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if math.Abs(got[k]-v) > 1e-9 {
			t.Errorf("%s: %v ms, want %v", k, got[k], v)
		}
	}
	if total := weftCallTotal(got); math.Abs(total-1502.413853) > 1e-9 {
		t.Errorf("total %v", total)
	}
	if parseWeftCalls("time=... level=INFO msg=\"network created\"\n") != nil || !math.IsNaN(weftCallTotal(nil)) {
		t.Error("a log without request lines gave calls")
	}
}
