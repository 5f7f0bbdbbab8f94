package bridge

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/nl"
	"github.com/weftnet/weft/test/nstest"
)

// growthEnv is a throwaway namespace holding one weft bridge with ports
// existing endpoints, their container ends moved to another namespace as
// dockerd moves them into containers.
type growthEnv struct {
	m   *Mode
	h   *nl.Handle
	raw *netlink.Handle
	n   dataplane.Network
	br  netlink.Link
}

func newGrowthEnv(b *testing.B, ports int) *growthEnv {
	b.Helper()
	ns := nstest.Setup(b)
	h, err := nl.New(ns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	sink := nstest.NewNS(b)
	raw := nstest.Netlink(b, ns)
	n := testNet(idA, 1)
	br, _, err := h.EnsureBridge(bridgeName(n), mtuOf(n), ownerAlias(n.ID))
	if err != nil {
		b.Fatal(err)
	}
	if err := h.SetHardwareAddr(br, bridgeMAC(n.ID)); err != nil {
		b.Fatal(err)
	}
	m := New(h, nil, nil, WithSets(h))
	b.Cleanup(func() { _ = m.Drain(context.Background()) })
	for i := range ports {
		ep := dataplane.Endpoint{ID: fmt.Sprintf("f%011x%052d", i, 0), NetworkID: n.ID, MAC: endpointTestMAC(i)}
		if err := m.CreateEndpoint(context.Background(), n, ep); err != nil {
			b.Fatal(err)
		}
		_, cont := VethNames(ep.ID)
		l, err := raw.LinkByName(cont)
		if err != nil {
			b.Fatal(err)
		}
		if err := raw.LinkSetNsFd(l, int(sink)); err != nil {
			b.Fatal(err)
		}
	}
	return &growthEnv{m: m, h: h, raw: raw, n: n, br: br}
}

func endpointTestMAC(i int) []byte {
	return []byte{0x02, 0x42, 0x0a, byte(i >> 16), byte(i >> 8), byte(i)}
}

// BenchmarkNetnsEndpointGrowth measures the bridge mode's CreateEndpoint
// and DeleteEndpoint (until the kernel has deleted the pair) on a bridge
// with 1 and with 1000 existing ports, next to the bare kernel work (veth
// add with master and up in one request; delete) on the same bridge: what
// grows in the second but not the first is weft's (issue 12).
//
//	WEFT_REQUIRE_PRIVILEGED=1 go test ./dataplane/bridge -run '^$' -bench NetnsEndpointGrowth -benchtime 200x
func BenchmarkNetnsEndpointGrowth(b *testing.B) {
	for _, ports := range []int{1, 1000} {
		b.Run("ports="+strconv.Itoa(ports)+"/weft", func(b *testing.B) {
			e := newGrowthEnv(b, ports)
			ctx := context.Background()
			var create, del, drain []float64
			defer func() { reportMedians(b, "create", create, "delete", del, "drain", drain) }()
			i := 0
			for b.Loop() {
				ep := dataplane.Endpoint{ID: fmt.Sprintf("a%011x%052d", i%50, 0), NetworkID: e.n.ID, MAC: endpointTestMAC(1 << 20)}
				i++
				t0 := time.Now()
				if err := e.m.CreateEndpoint(ctx, e.n, ep); err != nil {
					b.Fatal(err)
				}
				if _, err := e.m.Join(ctx, e.n, ep); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := e.m.DeleteEndpoint(ctx, e.n, ep); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if err := e.m.Drain(ctx); err != nil {
					b.Fatal(err)
				}
				create, del, drain = append(create, ms(t1.Sub(t0))), append(del, ms(t2.Sub(t1))), append(drain, ms(time.Since(t2)))
			}
		})
		b.Run("ports="+strconv.Itoa(ports)+"/kernel", func(b *testing.B) {
			e := newGrowthEnv(b, ports)
			var create, del []float64
			defer func() { reportMedians(b, "create", create, "delete", del) }()
			for b.Loop() {
				attrs := netlink.NewLinkAttrs()
				attrs.Name, attrs.MTU, attrs.MasterIndex = "kh0", 1500, e.br.Attrs().Index
				attrs.Flags = net.FlagUp
				v := netlink.NewVeth(attrs)
				v.PeerName, v.PeerHardwareAddr = "kc0", endpointTestMAC(1<<20)
				t0 := time.Now()
				if err := e.raw.LinkAdd(v); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := e.raw.LinkDel(v); err != nil {
					b.Fatal(err)
				}
				create, del = append(create, ms(t1.Sub(t0))), append(del, ms(time.Since(t1)))
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportMedians reports the median of each named series, in ms.
func reportMedians(b *testing.B, kv ...any) {
	for i := 0; i+1 < len(kv); i += 2 {
		v := slices.Clone(kv[i+1].([]float64))
		if len(v) == 0 {
			continue
		}
		slices.Sort(v)
		b.ReportMetric(v[len(v)/2], kv[i].(string)+"-ms-p50")
	}
}

// BenchmarkNetnsDeleteOverlap measures what the plugin's DeleteEndpoint
// does after the mode's DeleteEndpoint (a durable store write, here a
// stand-in: 9 pages written and fdatasync'ed) while the kernel deletes the
// pair in the background, on a bridge with 1 and with 1000 ports.
//
//	WEFT_REQUIRE_PRIVILEGED=1 go test ./dataplane/bridge -run '^$' -bench NetnsDeleteOverlap -benchtime 100x
func BenchmarkNetnsDeleteOverlap(b *testing.B) {
	for _, ports := range []int{1, 1000} {
		b.Run("ports="+strconv.Itoa(ports), func(b *testing.B) {
			e := newGrowthEnv(b, ports)
			ctx := context.Background()
			f, err := os.Create(filepath.Join(b.TempDir(), "db"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			page := make([]byte, 9*4096)
			save := func() float64 {
				t0 := time.Now()
				if _, err := f.WriteAt(page, 0); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				return ms(time.Since(t0))
			}
			var overlap, alone []float64
			defer func() { reportMedians(b, "save-during-delete", overlap, "save-alone", alone) }()
			i := 0
			for b.Loop() {
				ep := dataplane.Endpoint{ID: fmt.Sprintf("a%011x%052d", i%50, 0), NetworkID: e.n.ID, MAC: endpointTestMAC(1 << 20)}
				i++
				if err := e.m.CreateEndpoint(ctx, e.n, ep); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if err := e.m.DeleteEndpoint(ctx, e.n, ep); err != nil {
					b.Fatal(err)
				}
				save()
				overlap = append(overlap, ms(time.Since(t0)))
				if err := e.m.Drain(ctx); err != nil {
					b.Fatal(err)
				}
				alone = append(alone, save())
			}
		})
	}
}

// BenchmarkNetnsCheckLinks measures the link part of the repairer's Check
// (every RepairInterval): reading the bridges' device groups, on a
// namespace with 1 and with 1000 endpoint veths. "dump" is the link dump
// Check used to make; "check" is what readKernel does now.
//
//	WEFT_REQUIRE_PRIVILEGED=1 go test ./dataplane/bridge -run '^$' -bench NetnsCheckLinks
func BenchmarkNetnsCheckLinks(b *testing.B) {
	for _, ports := range []int{1, 1000} {
		b.Run("ports="+strconv.Itoa(ports), func(b *testing.B) {
			e := newGrowthEnv(b, ports)
			b.Run("dump", func(b *testing.B) {
				for b.Loop() {
					if _, err := e.h.LinkList(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("check", func(b *testing.B) {
				for b.Loop() {
					k, err := e.m.readKernel(context.Background(), nil, true)
					if err != nil {
						b.Fatal(err)
					}
					if _, ok := k.groups[bridgeName(e.n)]; !ok || len(k.groups) != 1 {
						b.Fatalf("groups read: %v", k.groups)
					}
				}
			})
		})
	}
}
