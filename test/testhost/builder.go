package testhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// StartBuilder starts a dockerd to build images with (scripts/build-plugin.sh
// builds weft's managed plugin with one): in this process's own network
// namespace, so that a Dockerfile's apt-get (and `go mod download`) reach
// the package registries the machine reaches, with its networking off
// (--bridge none, --iptables=false, --ip-forward=false: it changes nothing
// in the machine's network) and a private mount namespace (a private /run
// whose tmpfs is named tmpfs, see HolderScript), so that its plugin and
// containerd directories stay off the machine's. Everything of its own is
// under dir (data-root, exec-root, its socket dir/docker.sock, its log
// dir/dockerd.log); its containers' cgroups under /cgroupParent; extra is
// appended to its command line. dockerd itself is the process that stays
// (exec), so its pidfile and command line (which names dir) let a later
// run's stale clean-up (CleanupStale) find it. It returns once dockerd
// answers; stop it with StopBuilder. On failure nothing is left running.
func StartBuilder(dir, tmpfs, dockerd, cgroupParent string, extra ...string) (*Machine, error) {
	for _, d := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	m := &Machine{Dir: dir, Sock: filepath.Join(dir, "docker.sock")}
	conf := fmt.Sprintf(`{"live-restore": false, "deprecated-key-path": %q, "bridge": "none", "iptables": false, "ip6tables": false, "ip-forward": false, "ip-masq": false}`+"\n",
		filepath.Join(dir, "key.json"))
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	argv := []string{"unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", HolderScript(tmpfs, `"$@"`), "sh",
		dockerd,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", "unix://" + m.Sock,
		"--cgroup-parent", "/" + cgroupParent,
	}
	argv = append(argv, extra...)
	p, err := StartProc("builder dockerd", filepath.Join(dir, "dockerd.log"), filepath.Join(dir, "builder.pid"), argv...)
	if err != nil {
		return nil, err
	}
	m.Dockerd = p
	if err := m.WaitDockerd(60 * time.Second); err != nil {
		return nil, errors.Join(err, m.StopBuilder(cgroupParent))
	}
	return m, nil
}

// StopBuilder stops a dockerd StartBuilder started (SIGTERM, 60 s, SIGKILL)
// and removes its containers' cgroups (under /cgroupParent).
func (m *Machine) StopBuilder(cgroupParent string) error {
	var errs []error
	if err := m.Dockerd.Stop(60 * time.Second); err != nil {
		errs = append(errs, fmt.Errorf("stopping the builder: %w", err))
	}
	if err := RemoveCgroups(cgroupParent); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// keptDirRE finds the directory scripts/build-plugin.sh keeps with KEEP_DIR=1.
var keptDirRE = regexp.MustCompile(`(?m)plugin directory kept: (\S+)$`)

// KeptPluginDir is the plugin directory (rootfs and config.json, what
// `docker plugin create` takes) that scripts/build-plugin.sh, run with
// KEEP_DIR=1, says it kept in its output out; ok is false if it says none.
func KeptPluginDir(out string) (dir string, ok bool) {
	m := keptDirRE.FindStringSubmatch(out)
	if m == nil {
		return "", false
	}
	return m[1], true
}
