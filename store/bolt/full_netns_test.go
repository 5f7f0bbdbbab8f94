package bolt

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/test/nstest"
)

// TestFullOrReadOnlyStateDir puts the state file on a small tmpfs (a mount
// of the test's own), fills it, then makes it read-only: writes fail with an
// error that names the state directory and says what to do, nothing is
// half-written, and once space is back writes succeed and every record
// written before is intact.
func TestFullOrReadOnlyStateDir(t *testing.T) {
	nstest.RequirePrivileged(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a tmpfs for the state dir: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "weft.db")
	s := mustOpen(t, path)
	ctx := context.Background()
	if err := s.Apply(ctx, store.Put("b", "before", []byte("kept"))); err != nil {
		t.Fatal(err)
	}

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{1}, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break // the tmpfs is full
		}
	}
	_ = f.Close()
	big := bytes.Repeat([]byte{2}, 256<<10) // needs pages the disk no longer has
	err = s.Apply(ctx, store.Put("b", "big", big), store.Put("b", "small", []byte("x")))
	if err == nil {
		t.Fatal("a write on a full disk succeeded")
	}
	for _, w := range []string{dir, "full", "free space"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	checkRecords(t, s, map[string]string{"before": "kept"})

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, store.Put("b", "small", []byte("x"))); err != nil {
		t.Fatalf("writing once space is back: %v", err)
	}
	checkRecords(t, s, map[string]string{"before": "kept", "small": "x"})

	// Read-only: a file open for writing keeps the mount busy, so close the
	// store, remount read-only and open again, as a restarted weft would.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting read-only: %v", err)
	}
	if ro, err := Open(path); err == nil {
		_ = ro.Close()
		t.Fatal("opened the state file for writing on a read-only directory")
	} else {
		for _, w := range []string{dir, "not writable"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT, ""); err != nil {
		t.Fatalf("remounting read-write: %v", err)
	}
	s = mustOpen(t, path)
	checkRecords(t, s, map[string]string{"before": "kept", "small": "x"})
}

func checkRecords(t *testing.T, s *Store, want map[string]string) {
	t.Helper()
	got, err := s.List(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("records %v, want %v", keys(got), want)
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("record %s = %q, want %q", k, got[k], v)
		}
	}
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
