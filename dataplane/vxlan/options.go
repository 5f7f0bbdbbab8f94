package vxlan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/dataplane"
)

// Option configures New.
type Option func(*Mode)

// WithVTEP sets this host's underlay address: the source of encapsulated
// packets and the address other hosts send this host's traffic to
// (WEFT_VTEP_ADDR). It must be an address of a link of this host. Without
// it, the mode uses DefaultVTEP, looked up when a network is created.
func WithVTEP(addr netip.Addr) Option {
	return func(m *Mode) { m.vtep = addr.Unmap() }
}

// WithFlavour sets the names this Mode gives what it makes and recognises as
// its own (default Local): a global-scope weft passes Swarm, so that it and
// a local-scope weft on the same node never touch each other's links, sets
// or rules.
func WithFlavour(f Flavour) Option {
	return func(m *Mode) { m.names = f }
}

// WithChecksumOffload sets the checksum-offload setting (default
// OffloadAuto); see Offload.
func WithChecksumOffload(o Offload) Option {
	return func(m *Mode) { m.offload = o }
}

// WithNamespace names the network namespace the handle given to New acts in,
// for the one request that does not go through netlink (the ethtool ioctl
// that sets checksum offload). Without it that request acts in the calling
// thread's namespace, which for weft is the host's, as is the handle's.
// Tests that drive a Mode in a namespace other than their own pass it.
func WithNamespace(ns netns.NsHandle) Option {
	return func(m *Mode) { m.ns = ns }
}

// Offload is the checksum-offload setting of VXLAN links.
type Offload string

// The accepted Offload values.
const (
	// OffloadAuto turns transmit checksum offload off on kernels older
	// than 5.7, whose VXLAN checksum offload miscomputes checksums of
	// NATed packets (flannel#1279, calico#3145; Calico does the same), and
	// leaves the kernel's default (on) elsewhere.
	OffloadAuto Offload = "auto"
	// OffloadOn keeps transmit checksum offload on: inner checksums are
	// left to the underlay NIC where it can (the kernel's default).
	OffloadOn Offload = "on"
	// OffloadOff turns transmit checksum offload off on the VXLAN link
	// (ethtool -K LINK tx off, as flannel and Calico do on broken
	// kernels and NICs, e.g. vmxnet3): the kernel computes inner
	// checksums in software before encapsulating.
	OffloadOff Offload = "off"
)

// Offloads returns the accepted values, for error messages and help.
func Offloads() []Offload { return []Offload{OffloadAuto, OffloadOn, OffloadOff} }

// ParseOffload parses a checksum-offload setting; "" is OffloadAuto.
func ParseOffload(s string) (Offload, error) {
	switch o := Offload(strings.ToLower(strings.TrimSpace(s))); o {
	case "":
		return OffloadAuto, nil
	case OffloadAuto, OffloadOn, OffloadOff:
		return o, nil
	}
	return "", fmt.Errorf("checksum offload %q: want auto, on or off", s)
}

// ParseVTEP parses a VTEP address setting (WEFT_VTEP_ADDR); see
// dataplane.ParseVTEP.
func ParseVTEP(s string) (netip.Addr, error) { return dataplane.ParseVTEP(s) }

func checkVTEP(a netip.Addr) error { return dataplane.CheckVTEP(a) }

// resolve turns OffloadAuto into on or off for the running kernel.
func (o Offload) resolve(release string) (on bool, err error) {
	switch o {
	case OffloadOn:
		return true, nil
	case OffloadOff:
		return false, nil
	case OffloadAuto, "":
		maj, min, ok := kernelVersion(release)
		return !ok || maj > 5 || maj == 5 && min >= 7, nil
	}
	return false, fmt.Errorf("checksum offload %q: want auto, on or off", string(o))
}

// kernelVersion parses the major and minor version of a kernel release
// string ("6.1.0-18-amd64").
func kernelVersion(release string) (major, minor int, ok bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	end := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(parts[1])
	}
	minor, err2 := strconv.Atoi(parts[1][:end])
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return major, minor, true
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
