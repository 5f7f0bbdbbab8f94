// Package flock tells whether some process holds a lock on a file, for the
// test harnesses (the e2e suite and the benchmarks), which must not touch
// what a run of another prefix is using.
package flock

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Held reports whether some process holds a lock on path, from /proc/locks,
// without taking the lock (which would make the run that owns it fail to
// start at that moment).
func Held(path string) bool {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return false
	}
	// Lines like "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF": the
	// device (major:minor, hex) and inode.
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 6 && f[5] == want {
			return true
		}
	}
	return false
}
