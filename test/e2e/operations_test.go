//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/doctor"
	weftplugin "github.com/weftnet/weft/plugin"
)

// TestOperations: weft status, weft doctor and the metrics, against a real
// dockerd with a network and a container. status reads the running weft
// and, with weft killed, its state file; doctor finds the host in order and
// then the bridge it had removed; the metrics count the calls dockerd made
// and the network and endpoint.
func TestOperations(t *testing.T) {
	metricsSock := filepath.Join(cfg.dir, "ops-metrics.sock")
	h := newHost(t, "ops", hostOptions{weftEnv: []string{"WEFT_METRICS_ADDR=unix://" + metricsSock}})
	netID := h.CreateNetwork(t, "ops-net", "--subnet", "10.97.0.0/24")
	h.Run(t, "ops-a", "--network", "ops-net")
	ip := h.ContainerIP(t, "ops-a", "ops-net")
	sock := filepath.Join(h.PluginDir(), "weft.sock")

	// status, from the running weft.
	var st weftplugin.Status
	out := weftCmd(t, nil, "status", "--json", "--socket", sock)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("weft status --json: %v\n%s", err, out)
	}
	if st.Source != "plugin" || len(st.Networks) != 1 || st.Networks[0].ID != netID || len(st.Endpoints) != 1 ||
		st.Endpoints[0].IPv4 != ip.String()+"/24" || !strings.HasPrefix(st.Endpoints[0].HostLink, "wh") {
		t.Fatalf("weft status: %s", out)
	}
	table := weftCmd(t, nil, "status", "--socket", sock)
	for _, want := range []string{netID[:12] + "  bridge", "10.97.0.0/24 gw 10.97.0.1", ip.String() + "/24", st.Endpoints[0].HostLink} {
		if !strings.Contains(table, want) {
			t.Errorf("weft status table lacks %q:\n%s", want, table)
		}
	}

	// doctor, in the host's namespaces: the links and weft's own firewall
	// check pass; then the bridge goes and the links check fails.
	checks := runDoctor(t, h, sock)
	for _, name := range []string{"links", "firewall (weft's own check)", "kernel: bridge", "kernel: veth", "iptables back-end", "state directory"} {
		if r := checks[name]; r.Verdict != doctor.OK {
			t.Errorf("doctor %s: %+v", name, r)
		}
	}

	// metrics, over their unix socket.
	m := scrapeUnix(t, metricsSock)
	for _, want := range []string{
		`weft_networks{mode="bridge"} 1`,
		`weft_endpoints{mode="bridge"} 1`,
		`weft_request_duration_seconds_count{outcome="ok",route="NetworkDriver.CreateNetwork"} 1`,
		`weft_request_duration_seconds_count{outcome="ok",route="NetworkDriver.Join"} 1`,
		`weft_state_ready 1`,
	} {
		if !strings.Contains(m, "\n"+want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.Contains(m, `weft_store_operation_duration_seconds_count{op="apply",store="local"}`) {
		t.Error("metrics lack the store's timings")
	}

	// weft killed: status reads the state file, and says so.
	h.KillWeft(t)
	out = weftCmd(t, nil, "status", "--json", "--socket", sock, "--state-file", filepath.Join(h.weftStateDir(), "weft.db"))
	st = weftplugin.Status{}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Source != "state file" || len(st.Networks) != 1 || len(st.Endpoints) != 1 {
		t.Fatalf("weft status with weft down: %v\n%s", err, out)
	}
	h.StartWeft(t)

	// A bridge removed behind weft's back: the doctor sees it, unless the
	// repairer already put it back (it checks every 2 s); either way the
	// log or the check shows it.
	h.NS(t, "ip", "link", "del", st.Networks[0].Bridge)
	checks = runDoctor(t, h, sock)
	if r := checks["links"]; r.Verdict != doctor.Fail && r.Verdict != doctor.OK {
		t.Errorf("doctor links after the bridge was removed: %+v", r)
	} else {
		t.Logf("doctor, bridge removed: %s %s", r.Verdict, r.Detail)
	}
	// weft puts it back; then the doctor is content again.
	err := pollUntil(30*time.Second, func() bool { return runDoctor(t, h, sock)["links"].Verdict == doctor.OK })
	if err != nil {
		t.Errorf("the bridge did not come back: %v", err)
	}
	h.AssertPing(t, "ops-a", "10.97.0.1")
}

// weftCmd runs the weft binary of the run with args (prefix, if not nil,
// goes before it) and returns its standard output; it fails t when weft
// exits non-zero.
func weftCmd(t *testing.T, prefix []string, args ...string) string {
	t.Helper()
	argv := append(append(prefix, cfg.weftBin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, stderr.String())
	}
	return string(out)
}

// runDoctor runs weft doctor --json in h's network and mount namespaces
// and returns its results by name (its exit status is not looked at: the
// test host's lack of an 802.1Q module is no failure of the test).
func runDoctor(t *testing.T, h *Host, sock string) map[string]doctor.Result {
	t.Helper()
	rs, _ := runDoctorEnv(t, h, sock, nil)
	return rs
}

// runDoctorEnv is runDoctor with variables added to the doctor's
// environment (weft's settings, such as WEFT_STORE); it also returns the
// exit status.
func runDoctorEnv(t *testing.T, h *Host, sock string, env []string) (map[string]doctor.Result, int) {
	t.Helper()
	argv := append(h.InNet(), cfg.weftBin, "doctor", "--json", "--socket", sock, "--state-dir", h.weftStateDir())
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	}
	rs, err := doctorResults(out)
	if err != nil {
		t.Fatalf("weft doctor --json: %v\n%s\n%s", err, out, stderr.String())
	}
	return rs, code
}

// doctorResults reads weft doctor --json's output, by check name.
func doctorResults(out []byte) (map[string]doctor.Result, error) {
	var rs []doctor.Result
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, err
	}
	byName := map[string]doctor.Result{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	return byName, nil
}

// failedChecks lists the checks that failed, for messages.
func failedChecks(rs map[string]doctor.Result) string {
	var out []string
	for _, r := range rs {
		if r.Verdict == doctor.Fail {
			out = append(out, fmt.Sprintf("%s: %s (fix: %s)", r.Name, r.Detail, r.Fix))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n  ")
}

func scrapeUnix(t *testing.T, sock string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://weft/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func pollUntil(d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil
}
