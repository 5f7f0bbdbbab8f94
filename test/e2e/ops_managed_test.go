//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/doctor"
	weftplugin "github.com/weftnet/weft/plugin"
)

// TestOperationsManaged: weft status and weft doctor run as
// docs/operations.md says for the managed plugin (the weft binary in the
// plugin's root file system, run as root on the host) reach the running
// plugin through its socket, which they find by themselves, and, with the
// plugin disabled, read its state file; the doctor passes both times.
func TestOperationsManaged(t *testing.T) {
	startRegistry(t)
	h := newManagedHost(t, "m-ops", managedHostOptions{})
	p := mp(h)
	netID := h.CreateNetwork(t, "mo-net", "--subnet", "10.98.0.0/24")
	h.Run(t, "mo-a", "--network", "mo-net")
	ip := h.ContainerIP(t, "mo-a", "mo-net")

	// id=$(docker plugin inspect -f '{{.Id}}' weft:latest)
	// weft=<data-root>/plugins/$id/rootfs/usr/bin/weft
	id := h.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", p.ref)
	weft := filepath.Join(h.Dir, "data", "plugins", id, "rootfs", "usr", "bin", "weft")
	// dockerd 20.10 puts the socket where weft looks by itself
	// (/run/docker/plugins/<id>/); newer ones under --exec-root, which the
	// test's dockerd sets, so there the documented --socket is given.
	var sockArgs []string
	if _, err := os.Stat(filepath.Join(h.PluginDir(), id, "weft.sock")); err != nil {
		sockArgs = []string{"--socket", filepath.Join(h.Dir, "exec", "plugins", id, "weft.sock")}
	}
	// run runs the plugin's weft on the host (its mount and network
	// namespaces) and returns its standard output and exit status; its
	// standard error goes to the test's log.
	run := func(args ...string) (string, int) {
		t.Helper()
		argv := append(append(h.InHost(), weft), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if stderr.Len() > 0 {
			t.Logf("%s: stderr: %s", strings.Join(args, " "), stderr.String())
		}
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return string(out), exit.ExitCode()
		case err != nil:
			t.Fatalf("%s: %v", strings.Join(argv, " "), err)
		}
		return string(out), 0
	}
	status := func(args ...string) weftplugin.Status {
		t.Helper()
		out, code := run(append(append([]string{"status", "--json"}, sockArgs...), args...)...)
		var st weftplugin.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
			t.Fatalf("weft status: exit %d, %v\n%s", code, err, out)
		}
		if len(st.Networks) != 1 || st.Networks[0].ID != netID || len(st.Endpoints) != 1 || st.Endpoints[0].IPv4 != ip.String()+"/24" {
			t.Errorf("weft status (%s): %+v", st.Source, st)
		}
		return st
	}
	doctorRun := func(when string) map[string]doctor.Result {
		t.Helper()
		out, code := run(append([]string{"doctor", "--json", "--state-dir", p.stateDir}, sockArgs...)...)
		byName, err := doctorResults([]byte(out))
		if err != nil {
			t.Fatalf("weft doctor, %s: exit %d, %v\n%s", when, code, err, out)
		}
		if code != 0 {
			t.Errorf("weft doctor, %s: exit %d:\n  %s", when, code, failedChecks(byName))
		}
		return byName
	}

	if st := status(); st.Source != weftplugin.SourcePlugin {
		t.Errorf("weft status with the plugin enabled read the %s", st.Source)
	}
	if out, code := run(append([]string{"status"}, sockArgs...)...); code != 0 || !strings.Contains(out, netID[:12]+"  bridge") {
		t.Errorf("weft status: exit %d\n%s", code, out)
	}
	rs := doctorRun("plugin enabled")
	for _, name := range []string{"firewall (weft's own check)", "links", "state directory"} {
		if rs[name].Verdict != doctor.OK {
			t.Errorf("doctor %s with the plugin enabled: %+v", name, rs[name])
		}
	}

	// Disabled: status reads the state file it is given, the doctor
	// compares that with the kernel.
	h.Docker(t, "plugin", "disable", "-f", p.ref)
	if st := status("--state-file", filepath.Join(p.stateDir, "weft.db")); st.Source != weftplugin.SourceStateFile {
		t.Errorf("weft status with the plugin disabled read the %s", st.Source)
	}
	rs = doctorRun("plugin disabled")
	if r := rs["firewall (weft's own check)"]; r.Verdict != doctor.Skip && r.Verdict != doctor.Warn {
		t.Errorf("doctor's firewall check with the plugin disabled: %+v", r)
	}
	if rs["links"].Verdict != doctor.OK {
		t.Errorf("doctor links with the plugin disabled: %+v", rs["links"])
	}
	h.Docker(t, "plugin", "enable", p.ref)
	if err := p.waitReady(h); err != nil {
		t.Fatal(err)
	}
	h.AssertPing(t, "mo-a", "10.98.0.1")
}
