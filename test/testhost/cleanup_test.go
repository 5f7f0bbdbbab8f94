package testhost

import (
	"slices"
	"testing"
)

// TestNamesPathUnder: a pidfile's process is a stale run's only if its
// command line names a path under the run's own directory, alone or as a
// flag's value; never another prefix's directory that merely starts alike.
func TestNamesPathUnder(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		want    bool
	}{
		{"dockerd\x00--data-root\x00/tmp/weft-e2e/main/data\x00", true},
		{"dockerd\x00--data-root=/tmp/weft-e2e/main/data\x00", true},
		{"dockerd\x00-H\x00unix:///tmp/weft-e2e/main/docker.sock\x00", true},
		{"sleep\x00/tmp/weft-e2e\x00", true},
		{"weft\x00--state-dir\x00/tmp/weft-e2e26/x\x00--log\x00/tmp/weft-e2e/main/weft.log\x00", true},
		{"dockerd\x00--data-root\x00/tmp/weft-e2e26/main/data\x00", false},
		{"dockerd\x00--data-root\x00/var/tmp/weft-e2e/main\x00", false},
		{"dockerd\x00--data-root\x00/tmp/weft-e2e-old/main\x00", false},
		{"sleep\x00infinity\x00", false},
		{"", false},
	} {
		if got := namesPathUnder(c.cmdline, "/tmp/weft-e2e"); got != c.want {
			t.Errorf("namesPathUnder(%q, /tmp/weft-e2e) = %v, want %v", c.cmdline, got, c.want)
		}
	}
	if namesPathUnder("sleep\x00/tmp/x\x00", "") {
		t.Error("an empty directory matches")
	}
}

func TestMountPointUnder(t *testing.T) {
	line := func(mp string) string {
		return "36 35 98:0 /mnt1 " + mp + " rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
	}
	for mp, want := range map[string]bool{
		"/tmp/weft-e2e":                 true,
		"/tmp/weft-e2e/main/weft-state": true,
		"/tmp/weft-e2e26/main":          false,
		"/tmp":                          false,
	} {
		if got, ok := mountPointUnder(line(mp), "/tmp/weft-e2e"); ok != want || ok && got != mp {
			t.Errorf("mountPointUnder(%s) = %q, %v; want %v", mp, got, ok, want)
		}
	}
	if _, ok := mountPointUnder("short line", "/tmp"); ok {
		t.Error("a short line matched")
	}
}

func TestParsePIDs(t *testing.T) {
	if got, want := parsePIDs("12\n345 x 6\n\n"), []int{12, 345, 6}; !slices.Equal(got, want) {
		t.Errorf("parsePIDs = %v, want %v", got, want)
	}
}

// TestRefusals: what would reach beyond the caller's objects is refused
// before anything is touched.
func TestRefusals(t *testing.T) {
	if err := CleanupStale("", "/tmp/nonexistent-testhost"); err == nil {
		t.Error("CleanupStale with an empty prefix did not refuse")
	}
	for _, dir := range []string{"", "/", "//"} {
		if err := RemoveAllUnder(dir); err == nil {
			t.Errorf("RemoveAllUnder(%q) did not refuse", dir)
		}
	}
	for _, name := range []string{"", "a/b", "../x"} {
		if err := RemoveCgroups(name); err == nil {
			t.Errorf("RemoveCgroups(%q) did not refuse", name)
		}
	}
}
