//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/weftnet/weft/test/flock"
)

// TestPrefixesNeverOverlap: the prefix rule (defaultPrefix) keeps one run's
// start-up cleanup off another run's objects: no valid prefix's "PREFIX-"
// begins a name of another valid prefix. (That the pidfile check takes only
// paths under the run's own directory is testhost's TestNamesPathUnder.)
func TestPrefixesNeverOverlap(t *testing.T) {
	valid := []string{"weft-e2e", "weft-e2e2", "weft-e2e26", "weft-e2e20", "weft-e2enft", "weft-e2e0123456789abcdef"}
	for _, p := range valid {
		if !prefixRE.MatchString(p) {
			t.Errorf("prefix %q refused", p)
		}
	}
	for _, p := range []string{"", "weft", "weft-e2e-26", "weft-e2e_26", "Weft-e2e", "weft-e2e.26", "weft-e2e/26", "weft-e2e 26",
		"weft-bench", "weft-e2e0123456789abcdefg", "weft-e2e26\n", "../weft-e2e"} {
		if prefixRE.MatchString(p) {
			t.Errorf("prefix %q accepted", p)
		}
	}
	hosts := []string{"main", "main-out", "lan-a", "26-main", "builder", "m-two-a"}
	for _, p := range valid {
		for _, q := range valid {
			for _, h := range hosts {
				name := q + "-" + h
				if strings.HasPrefix(name, p+"-") != (p == q) {
					t.Errorf("the cleanup of prefix %q would take %q of prefix %q", p, name, q)
				}
			}
		}
	}
}

// TestLockHeld: lockHeld sees a flock another open file holds, and no more
// once it is released.
func TestLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if flock.Held(path) {
		t.Fatal("lockHeld: true before the lock was taken")
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if !flock.Held(path) {
		t.Fatal("lockHeld: false while the lock is held")
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if flock.Held(path) {
		t.Fatal("lockHeld: true after the lock was released")
	}
}
