//go:build bench

package main

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/test/testhost"
)

// kernelFloor does, straight through netlink in a namespace of its own, the
// link work weft's CreateEndpoint and DeleteEndpoint ask of the kernel: add a
// veth pair (MTU, peer MAC), put one end on a bridge and set it up; delete
// it. Timed alongside weft's calls, it is the floor no plugin can go below.
type kernelFloor struct {
	name   string
	ns     netns.NsHandle
	h      *netlink.Handle
	brIdx  map[string]int // bridge name -> index
	nPorts map[string]int // bridge name -> ports it was given at start
}

const kernelNS = nsPrefix + "kern"

// newKernelFloor makes a namespace with one bridge per entry of ports, each
// with that many veth ports already on it (their peers in the sink
// namespace, as a container's would be in its own).
func newKernelFloor(ports map[string]int, sink string) (*kernelFloor, error) {
	if err := testhost.AddNetNS(kernelNS); err != nil {
		return nil, err
	}
	k := &kernelFloor{name: kernelNS, brIdx: map[string]int{}, nPorts: ports}
	var err error
	if k.ns, err = netns.GetFromName(kernelNS); err != nil {
		return k, err
	}
	if k.h, err = netlink.NewHandleAt(k.ns); err != nil {
		return k, err
	}
	sinkNS, err := netns.GetFromName(sink)
	if err != nil {
		return k, err
	}
	defer func() { _ = sinkNS.Close() }()
	for name, n := range ports {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		if err := k.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return k, err
		}
		br, err := k.h.LinkByName(name)
		if err != nil {
			return k, err
		}
		if err := k.h.LinkSetUp(br); err != nil {
			return k, err
		}
		k.brIdx[name] = br.Attrs().Index
		for i := range n {
			pa := netlink.NewLinkAttrs()
			pa.Name, pa.MTU, pa.MasterIndex = fmt.Sprintf("kp%s%d", name[len(name)-1:], i), 1500, br.Attrs().Index
			pa.Flags = net.FlagUp
			v := &netlink.Veth{LinkAttrs: pa, PeerName: fmt.Sprintf("kq%s%d", name[len(name)-1:], i), PeerNamespace: netlink.NsFd(int(sinkNS))}
			if err := k.h.LinkAdd(v); err != nil {
				return k, fmt.Errorf("kernel floor: port %d of %s: %w", i, name, err)
			}
		}
	}
	return k, nil
}

// create returns the time to add, enslave to bridge br and set up a veth
// pair named after id.
func (k *kernelFloor) create(br, id string) (float64, error) {
	start := time.Now()
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = "kh"+id[:12], 1500
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0, 0, 2}
	if err := k.h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "kc" + id[:12], PeerHardwareAddr: mac}); err != nil {
		return 0, fmt.Errorf("kernel floor: adding veth: %w", err)
	}
	l, err := k.h.LinkByName(attrs.Name)
	if err != nil {
		return 0, err
	}
	if err := k.h.LinkSetMasterByIndex(l, k.brIdx[br]); err != nil {
		return 0, err
	}
	if err := k.h.LinkSetUp(l); err != nil {
		return 0, err
	}
	return ms(time.Since(start)), nil
}

// remove returns the time to delete the veth pair created for id.
func (k *kernelFloor) remove(id string) (float64, error) {
	start := time.Now()
	l, err := k.h.LinkByName("kh" + id[:12])
	if err != nil {
		return 0, err
	}
	if err := k.h.LinkDel(l); err != nil {
		return 0, fmt.Errorf("kernel floor: deleting veth: %w", err)
	}
	return ms(time.Since(start)), nil
}

func (k *kernelFloor) close() error {
	if k.h != nil {
		k.h.Close()
	}
	if k.ns.IsOpen() {
		_ = k.ns.Close()
	}
	return errors.Join(testhost.KillNetNS(k.name), testhost.DeleteNetNS(k.name))
}
