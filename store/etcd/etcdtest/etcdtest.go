// Package etcdtest starts real etcd servers (Debian's etcd-server, the
// same binary users run) as child processes of a test, so that the etcd
// store and, later, weft's multi-host tests run against etcd itself rather
// than a fake or an embedded server of another version.
//
// Nothing listens on a host port: every member's client and peer listeners
// are unix sockets in a private temporary directory, so parallel test
// binaries cannot collide and nothing is reachable from outside. etcd 3.4
// takes a unix URL's host:port as a socket file name relative to its
// working directory (unix://c-m0:2379 is the file "c-m0:2379"), so every
// member runs in the cluster's directory, and clients reach it through the
// absolute form unix:///dir/c-m0:2379, which the Go client accepts.
//
// Each cluster stops its own processes, by PID, and removes its directory
// when the test ends, pass or fail; the processes also get SIGKILL if the
// test binary dies first (Pdeathsig).
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is where Debian's etcd-server package installs etcd.
const Binary = "/usr/bin/etcd"

// StartTimeout bounds how long a cluster may take to serve: generous,
// because a loaded 2-core machine elects a leader slowly, and a healthy
// start takes about a second.
const StartTimeout = 60 * time.Second

// Cluster is a running etcd cluster owned by one test.
type Cluster struct {
	// Dir holds the members' sockets, data directories and logs.
	Dir     string
	Members []*Member
	// TLS is set for a cluster from StartTLS.
	TLS *TLSFiles
}

// Member is one etcd process of a Cluster.
type Member struct {
	Name string
	// ClientURL is the member's client endpoint (an absolute unix URL).
	ClientURL string
	dir       string
	args      []string
	log       string
	tls       *TLSFiles
	cmd       *exec.Cmd
	done      chan struct{} // closed when the process has exited
}

// Start starts a single-member cluster; see StartCluster.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return StartCluster(t, 1)
}

// StartCluster starts an n-member etcd cluster and waits until every member
// serves. It skips the test if etcd is not installed, and stops the cluster
// and removes its directory when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return start(t, n, false)
}

// StartTLS starts a single-member cluster whose client listener takes only
// TLS with a client certificate signed by its throwaway CA (see
// Cluster.TLS).
func StartTLS(t testing.TB) *Cluster {
	t.Helper()
	return start(t, 1, true)
}

func start(t testing.TB, n int, withTLS bool) *Cluster {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("etcd binary not installed (%s: install Debian's etcd-server package)", Binary)
	}
	// Not t.TempDir: a unix socket path must stay under 108 bytes, and
	// test names can be long.
	dir, err := os.MkdirTemp("", "weft-etcd-")
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	c := &Cluster{Dir: dir}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.stop()
		}
		if t.Failed() {
			for _, m := range c.Members {
				t.Logf("etcd member %s log (last lines):\n%s", m.Name, m.LogTail(40))
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("etcdtest: removing %s: %v", dir, err)
		}
	})

	scheme := "unix"
	var tlsArgs []string
	if withTLS {
		scheme = "unixs"
		f, err := makeTLS(dir)
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		c.TLS = f
		tlsArgs = []string{
			"--cert-file", f.ServerCert, "--key-file", f.ServerKey,
			"--client-cert-auth", "--trusted-ca-file", f.CAFile,
		}
	}
	var initial []string
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		initial = append(initial, fmt.Sprintf("%s=unix://p-%s:2380", name, name))
	}
	token := filepath.Base(dir) // unique per cluster
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		client := fmt.Sprintf("%s://c-%s:2379", scheme, name)
		peer := fmt.Sprintf("unix://p-%s:2380", name)
		m := &Member{
			Name:      name,
			ClientURL: scheme + "://" + filepath.Join(dir, fmt.Sprintf("c-%s:2379", name)),
			dir:       dir,
			tls:       c.TLS,
			log:       filepath.Join(dir, name+".log"),
			args: []string{
				"--name", name,
				"--data-dir", filepath.Join(dir, name+".data"),
				"--listen-client-urls", client,
				"--advertise-client-urls", client,
				"--listen-peer-urls", peer,
				"--initial-advertise-peer-urls", peer,
				"--initial-cluster", strings.Join(initial, ","),
				"--initial-cluster-state", "new",
				"--initial-cluster-token", token,
				"--logger", "zap",
				"--log-outputs", "stderr",
			},
		}
		m.args = append(m.args, tlsArgs...)
		c.Members = append(c.Members, m)
		if err := m.start(); err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
	}
	for _, m := range c.Members {
		if err := m.waitReady(StartTimeout); err != nil {
			t.Fatalf("etcdtest: %v\n%s", err, m.LogTail(40))
		}
	}
	return c
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

func (m *Member) start() error {
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(Binary, m.args...)
	cmd.Dir = m.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// If the test binary dies without cleaning up, so does etcd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(m.done)
	}()
	return nil
}

// waitReady polls the member with a linearizable read (so it has a leader)
// until it answers, it exits, or timeout passes.
func (m *Member) waitReady(timeout time.Duration) error {
	cfg := clientv3.Config{
		Endpoints:   []string{m.ClientURL},
		DialTimeout: time.Second,
		Logger:      zap.NewNop(),
	}
	if m.tls != nil {
		tc, err := m.tls.ClientConfig()
		if err != nil {
			return err
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			return fmt.Errorf("etcd member %s exited while starting (%v)", m.Name, m.cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, last = cli.Get(ctx, "/etcdtest-ready")
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-m.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("etcd member %s did not serve within %s: %v", m.Name, timeout, last)
}

// Running reports whether the member's process is running.
func (m *Member) Running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Stop stops the member (SIGTERM, then SIGKILL after 10 s) and waits for it
// to exit. Its data stays, so Restart can bring it back.
func (m *Member) Stop(t testing.TB) {
	t.Helper()
	m.stop()
}

func (m *Member) stop() {
	if !m.Running() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		return
	case <-time.After(10 * time.Second):
	}
	_ = m.cmd.Process.Kill()
	<-m.done
}

// Kill kills the member at once, as a crash or a power cut would.
func (m *Member) Kill(t testing.TB) {
	t.Helper()
	if !m.Running() {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
}

// Restart starts a stopped member again on its data and waits until it
// serves (which needs a quorum of the cluster).
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	if m.Running() {
		t.Fatalf("etcdtest: member %s is running", m.Name)
	}
	if err := m.start(); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	if err := m.waitReady(StartTimeout); err != nil {
		t.Fatalf("etcdtest: %v\n%s", err, m.LogTail(40))
	}
}

// LogTail returns the last n lines of the member's log.
func (m *Member) LogTail(n int) string {
	b, err := os.ReadFile(m.log)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "(no log)"
		}
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
