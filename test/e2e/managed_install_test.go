//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestManagedPluginBuild makes what every other managed test installs from
// (managed_host_test.go): scripts/build-plugin.sh builds the plugin in a
// builder dockerd, the first tag from the Dockerfile alone, the second with
// --binary, and pushes both to the run's registry, which must then list
// both. It sorts first of the managed tests, so the build's time is its
// own. With WEFT_E2E_PLUGIN_CACHE, the builds are done once for the runs
// that share the directory (scripts/test.sh: by its pre-build, with Debian
// 12's engine, beside the fuzz phase), and the others create both tags from
// the saved plugin directories with `docker plugin create` and push them
// from their own engine.
func TestManagedPluginBuild(t *testing.T) {
	startRegistry(t)
	requireManagedPlugin(t)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + registryAddr + "/v2/weft/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var list struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("the registry's tag list: %s: %v", resp.Status, err)
	}
	for _, tag := range []string{managedTag1, managedTag2} {
		if !slices.Contains(list.Tags, tag) {
			t.Errorf("the registry has tags %v, not %s", list.Tags, tag)
		}
	}
}

// TestManagedPlainInstall is the install a new user types, with nothing made
// first and no setting: `docker plugin install --grant-all-permissions
// --alias weft REF`. weft's state then lives in Docker's own directory for
// the plugin (config.json's propagatedmount: <data-root>/plugins/<id>/
// propagated-mount), which Docker creates, and which `docker plugin
// upgrade` keeps without state.source being set again. It also records
// which driver names the engine accepts for an aliased plugin.
func TestManagedPlainInstall(t *testing.T) {
	startRegistry(t)
	h := newManagedHost(t, "m-plain", managedHostOptions{noInstall: true})
	p := mp(h)
	h.Docker(t, "plugin", "install", "--grant-all-permissions", "--alias", "weft", p.ref)
	p.ref = "weft:latest" // the name an alias gets
	if err := p.waitReady(h); err != nil {
		t.Fatalf("a plain install did not come up: %v", err)
	}
	pc := p.inspect(t, h)
	if err := pc.checkMounts("/dev/null"); err != nil {
		t.Error(err) // the state mount unset
	}
	if got := strings.TrimSpace(h.Docker(t, "plugin", "inspect", "-f", "{{.Config.PropagatedMount}}", p.ref)); got != "/var/lib/weft" {
		t.Errorf("plugin propagated mount %q, want /var/lib/weft", got)
	}
	id, _ := p.id(h)
	stateFile := filepath.Join(h.Dir, "data", "plugins", id, "propagated-mount", "weft.db")
	if st, err := os.Stat(stateFile); err != nil || st.Size() == 0 {
		t.Errorf("no state file in Docker's directory for the plugin (%s): %v", stateFile, err)
	}
	if !slices.ContainsFunc(weftLog(h, id, 0), func(l weftLogLine) bool {
		return strings.Contains(l.Msg, "state directory: /var/lib/weft") && !strings.Contains(l.Msg, "weft-source")
	}) {
		t.Error("weft's log does not say that its state directory is /var/lib/weft (Docker's directory for the plugin)")
	}

	// A second instance (for example the swarm-scoped one) installed the
	// same way gets a directory of its own: it starts, with no "state file
	// is locked" error, beside the first. (Before any network exists: two
	// instances managing networks on one host is the swarm issue's work.)
	h.Docker(t, "plugin", "install", "--grant-all-permissions", "--disable", "--alias", "weft2", managedRef(managedTag1))
	second := &managedPlugin{ref: "weft2:latest"}
	t.Cleanup(func() { _, _, _ = h.DockerErr("plugin", "rm", "-f", second.ref) })
	h.Docker(t, "plugin", "enable", second.ref)
	if err := second.waitReady(h); err != nil {
		t.Errorf("a second instance with its own directory did not come up: %v", err)
	}
	id2, _ := second.id(h)
	if id2 == id || id2 == "" {
		t.Errorf("the second instance has ID %q, the first %q", id2, id)
	}
	if slices.ContainsFunc(weftLog(h, id2, 0), func(l weftLogLine) bool { return strings.Contains(l.Msg, "locked") }) {
		t.Error("the second instance found its state file locked")
	}
	h.Docker(t, "plugin", "disable", "-f", second.ref)
	h.Docker(t, "plugin", "rm", second.ref)

	// The driver names an aliased plugin answers to.
	major, minor := engineVersion(t, h)
	_, stderr, err := h.DockerErr("network", "create", "-d", "weft", "--ipam-driver", "weft", "--subnet", "10.88.1.0/24", "mp-short")
	shortWorks := err == nil
	if shortWorks {
		h.Docker(t, "network", "rm", "mp-short")
	}
	t.Logf("engine %d.%d: -d weft with --alias weft: works=%v %s", major, minor, shortWorks, strings.TrimSpace(stderr))
	// docs/engines.md ("Driver names") tells users that only name:tag
	// works, from 20.10 to 29.7: dockerd registers the driver under the
	// plugin's full name and then looks the short one up again. An engine
	// that accepts the short name makes that page wrong.
	if shortWorks {
		t.Errorf("engine %d.%d accepts -d weft for a plugin installed with --alias weft; docs/engines.md says it does not: update it", major, minor)
	} else if !strings.Contains(stderr, "could not resolve driver weft") {
		t.Errorf("engine %d.%d refuses -d weft with an error docs/engines.md does not quote: %s", major, minor, stderr)
	}
	h.CreateNetwork(t, "mp-net", "--subnet", "10.88.0.0/24") // -d weft:latest
	h.Run(t, "mp-1", "--network", "mp-net")
	ip1 := h.ContainerIP(t, "mp-1", "mp-net")

	// Upgrade with nothing set again: the state stays where it was.
	h.Docker(t, "plugin", "disable", "-f", p.ref)
	h.Docker(t, "plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", p.ref, managedRef(managedTag2))
	h.Docker(t, "plugin", "enable", p.ref)
	if err := p.waitReady(h); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(stateFile); err != nil || st.Size() == 0 {
		t.Errorf("after the upgrade the state file %s is gone: %v", stateFile, err)
	}
	h.Run(t, "mp-2", "--network", "mp-net")
	if ip2 := h.ContainerIP(t, "mp-2", "mp-net"); ip2 == ip1 {
		t.Errorf("after the upgrade a new container got %s, the address of a container from before it: the state was lost", ip2)
	}
	h.AssertPing(t, "mp-2", ip1.String())

	h.Docker(t, "rm", "-f", "mp-1", "mp-2")
	h.Docker(t, "network", "rm", "mp-net")
	h.AssertClean(t)
}
