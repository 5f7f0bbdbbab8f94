package vxlan

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Transmit checksum offload is set with the ethtool ioctl (netlink's ethtool
// family would do too, but the netlink library has no request for it). The
// ioctl acts on the namespace of the socket it is made on.

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with its union holding a pointer (ifr_data).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// txChecksum reads (set == nil) or sets the transmit checksum offload of the
// link called name and returns the state it found before.
func txChecksum(name string, set *bool) (bool, error) {
	if len(name) >= unix.IFNAMSIZ {
		return false, fmt.Errorf("interface name %q too long", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	get := ethtoolValue{cmd: unix.ETHTOOL_GTXCSUM}
	if err := ethtoolIoctl(fd, name, &get); err != nil {
		return false, fmt.Errorf("reading the checksum offload of %q: %w", name, err)
	}
	was := get.data != 0
	if set == nil || *set == was {
		return was, nil
	}
	v := ethtoolValue{cmd: unix.ETHTOOL_STXCSUM}
	if *set {
		v.data = 1
	}
	if err := ethtoolIoctl(fd, name, &v); err != nil {
		return was, fmt.Errorf("turning checksum offload %s on %q: %w", onOff(*set), name, err)
	}
	return was, nil
}

func ethtoolIoctl(fd int, name string, v *ethtoolValue) error {
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(v)
	if errno != 0 {
		return errno
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// inNamespace runs fn in ns (on a thread of its own, locked, moved back
// afterwards), or on the calling goroutine if ns is not set.
func inNamespace(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering the network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: Go ends it with this goroutine.
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
