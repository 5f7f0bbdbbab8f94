package nstest_test

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/weftnet/weft/test/nstest"
)

// selfNS is what /proc/self/ns/net of a program started now points to.
func selfNS() (string, error) {
	out, err := exec.Command("readlink", "/proc/self/ns/net").Output()
	return strings.TrimSpace(string(out)), err
}

func TestExecRunsInNamespace(t *testing.T) {
	ns := nstest.Setup(t)
	ino, err := nstest.Inode(ns)
	if err != nil {
		t.Fatal(err)
	}
	got, err := selfNS()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("net:[%d]", ino); got != want {
		t.Fatalf("program started from the test goroutine runs in %s, want the test namespace %s", got, want)
	}

	other := nstest.NewNS(t)
	oino, err := nstest.Inode(other)
	if err != nil {
		t.Fatal(err)
	}
	if oino == ino {
		t.Fatal("NewNS returned the test namespace")
	}
	err = nstest.Do(other, func() error {
		got, err := selfNS()
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("net:[%d]", oino); got != want {
			return fmt.Errorf("program started inside Do runs in %s, want %s", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The test goroutine is still in its own namespace.
	if got, _ := selfNS(); got != fmt.Sprintf("net:[%d]", ino) {
		t.Fatalf("after Do the test goroutine is in %s", got)
	}
}

func TestLoopbackUp(t *testing.T) {
	nstest.Setup(t)
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		t.Fatal("lo is down in the test namespace")
	}
	// Only lo exists in a fresh namespace.
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 {
		t.Fatalf("fresh namespace has %d interfaces, want 1 (lo)", len(ifs))
	}
}
