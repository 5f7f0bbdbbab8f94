// Package layering checks that the dependency direction weft's packages
// keep (main → plugin → ipam, dataplane, store) holds by itself:
// a wrong import fails the unit tests, and so CI, instead of waiting for a
// reviewer to notice.
package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/weftnet/weft"

// rule: every package matching pkg (a path below the module; a trailing
// "/..." takes the subtree) must not depend, directly or through others, on
// a package whose path starts with any of forbidden. stdOnly forbids every
// package outside the standard library but the ones matched by pkg itself.
type rule struct {
	pkg       string
	why       string
	stdOnly   bool
	forbidden []string
}

var rules = []rule{
	{pkg: "ipam", stdOnly: true, why: "IPAM is pure address management: no I/O, no third-party code"},
	{pkg: "store", stdOnly: true, why: "the store contract is the standard library only; back-ends live in sub-packages"},
	{pkg: "plugin", why: "the plugin reaches the kernel only through dataplane's modes",
		forbidden: []string{"github.com/vishvananda/", "github.com/coreos/go-iptables", module + "/dataplane/"}},
	{pkg: "dataplane/...", why: "the data plane knows nothing of Docker's types, the store or the plugin",
		forbidden: []string{"github.com/docker/", module + "/store", module + "/plugin", module + "/ipam", module + "/cluster"}},
	{pkg: "cluster/...", why: "a peer source carries records between wefts; it knows nothing of Docker, the plugin or the kernel",
		forbidden: []string{"github.com/docker/", module + "/plugin", module + "/dataplane", "github.com/vishvananda/", "github.com/coreos/go-iptables"}},
}

type pkgInfo struct {
	ImportPath string
	Standard   bool
	Deps       []string
	DepsErrors []struct{ Err string }
}

// listPackages runs `go list -deps` over the module and returns its packages
// and everything they depend on, each with its transitive dependencies.
func listPackages(t *testing.T) map[string]pkgInfo {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Standard,Deps,DepsErrors", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkgInfo{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func (r rule) matches(path string) bool {
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return false
	}
	if sub, tree := strings.CutSuffix(r.pkg, "/..."); tree {
		return rel == sub || strings.HasPrefix(rel, sub+"/")
	}
	return rel == r.pkg
}

func (r rule) violation(dep string, pkgs map[string]pkgInfo) bool {
	if r.stdOnly {
		return !pkgs[dep].Standard && !r.matches(dep)
	}
	for _, f := range r.forbidden {
		// "a/b/" forbids what is below a/b; "a/b" forbids a/b and below.
		if strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f) || dep == f || strings.HasPrefix(dep, f+"/") {
			return !r.matches(dep)
		}
	}
	return false
}

func TestDependencyDirection(t *testing.T) {
	pkgs := listPackages(t)
	for _, r := range rules {
		seen := 0
		for path, p := range pkgs {
			if !r.matches(path) {
				continue
			}
			seen++
			for _, dep := range p.Deps {
				if r.violation(dep, pkgs) {
					t.Errorf("%s depends on %s: %s", path, dep, r.why)
				}
			}
		}
		if seen == 0 {
			t.Errorf("rule for %s matched no package: the layout changed, update the rule", r.pkg)
		}
	}
}

// TestRulesCatchViolations: each kind of rule refuses what it should, on a
// made-up package graph, so a rule that can never fail is caught too.
func TestRulesCatchViolations(t *testing.T) {
	pkgs := map[string]pkgInfo{
		"fmt":                            {ImportPath: "fmt", Standard: true},
		"github.com/vishvananda/netlink": {ImportPath: "github.com/vishvananda/netlink"},
		"github.com/docker/go-plugins-helpers/network": {ImportPath: "github.com/docker/go-plugins-helpers/network"},
		module + "/store":            {ImportPath: module + "/store", Standard: false},
		module + "/dataplane/bridge": {ImportPath: module + "/dataplane/bridge"},
		module + "/dataplane/nl":     {ImportPath: module + "/dataplane/nl"},
	}
	byPkg := map[string]rule{}
	for _, r := range rules {
		byPkg[r.pkg] = r
	}
	cases := []struct {
		rule, pkg, dep string
		bad            bool
	}{
		{"ipam", module + "/ipam", "fmt", false},
		{"ipam", module + "/ipam", module + "/store", true},
		{"store", module + "/store", "github.com/vishvananda/netlink", true},
		{"plugin", module + "/plugin", "github.com/vishvananda/netlink", true},
		{"plugin", module + "/plugin", module + "/dataplane/nl", true},
		{"plugin", module + "/plugin", module + "/store", false},
		{"plugin", module + "/plugin", module + "/dataplane", false},
		{"dataplane/...", module + "/dataplane/bridge", "github.com/docker/go-plugins-helpers/network", true},
		{"dataplane/...", module + "/dataplane/bridge", module + "/store", true},
		{"dataplane/...", module + "/dataplane/bridge", module + "/dataplane/nl", false},
		{"dataplane/...", module + "/dataplane/bridge", "github.com/vishvananda/netlink", false},
	}
	for _, c := range cases {
		r := byPkg[c.rule]
		if !r.matches(c.pkg) {
			t.Errorf("rule %s does not apply to %s", c.rule, c.pkg)
		}
		if got := r.violation(c.dep, pkgs); got != c.bad {
			t.Errorf("rule %s: %s importing %s: violation=%v, want %v", c.rule, c.pkg, c.dep, got, c.bad)
		}
	}
}
