package status

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/weftnet/weft/plugin"
	"github.com/weftnet/weft/store"
)

// pluginsDir is where dockerd keeps plugin sockets: a legacy plugin's
// directly, a managed plugin's in a directory named after its ID.
const pluginsDir = "/run/docker/plugins"

// FindSockets returns the weft sockets on this host: the legacy one, then
// every managed plugin's (pluginsDir/<id>/weft.sock), that exist.
func FindSockets(root string) []string {
	var found []string
	if fi, err := os.Stat(filepath.Join(root, "weft.sock")); err == nil && fi.Mode().Type() == os.ModeSocket {
		found = append(found, filepath.Join(root, "weft.sock"))
	}
	managed, _ := filepath.Glob(filepath.Join(root, "*", "weft.sock"))
	for _, p := range managed {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
			found = append(found, p)
		}
	}
	return found
}

// FromSocket asks the weft serving sock for its status.
func FromSocket(ctx context.Context, sock string) (*plugin.Status, error) {
	var s plugin.Status
	if err := Post(ctx, sock, plugin.StatusPath, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ErrNotRunning is wrapped by Post's error when nobody answers on the
// socket: weft is not running (or the socket is another's).
var ErrNotRunning = errors.New("weft is not answering")

// Post calls one of weft's read-only routes on sock and decodes its answer
// into out.
func Post(ctx context.Context, sock, path string, out any) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://weft"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w on %s: %w", ErrNotRunning, sock, err)
		}
		return fmt.Errorf("asking weft on %s (%s): %w", sock, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading weft's answer to %s from %s: %w", path, sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Err string }
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("weft on %s does not serve %s: it is older than this weft command; upgrade it, or stop it and read its state file with --state-file", sock, path)
		}
		return fmt.Errorf("weft on %s answered %s to %s: %s", sock, resp.Status, path, e.Err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("weft on %s answered %s with something unexpected: %w", sock, path, err)
	}
	return nil
}

// lockWait is how long FromFile waits for the state file's lock. A weft
// that holds the file is running (and should have answered on its socket);
// a weft starting meanwhile waits for at most this long for FromFile's
// shared lock to go (it waits up to bolt.LockTimeout, a second).
const lockWait = 200 * time.Millisecond

// FromFile reads the status from a state file (weft.db) while weft is not
// running. The file is opened read-only with a shared lock held only for
// the few milliseconds of the read: it never writes, never creates the
// file, and never keeps a starting weft from its exclusive lock for longer
// than that.
func FromFile(ctx context.Context, path string) (*plugin.Status, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("reading the state file: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: lockWait})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("state file %s is held by a running weft (%w); ask it through its socket with --socket instead", path, err)
	case err != nil:
		return nil, fmt.Errorf("opening state file %s read-only: %w", path, err)
	}
	defer func() { _ = db.Close() }()
	return plugin.StatusFromStore(ctx, readOnly{db})
}

// readOnly is a store.Store over a bbolt file opened read-only; weft's
// store/bolt keeps its records the same way, one bucket per store bucket.
type readOnly struct{ db *bbolt.DB }

func (r readOnly) Apply(context.Context, ...store.Op) error {
	return errors.New("the state file is open read-only")
}

func (r readOnly) Get(_ context.Context, bucket, key string) ([]byte, bool, error) {
	var val []byte
	found := false
	err := r.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				val, found = append([]byte{}, v...), true
			}
		}
		return nil
	})
	return val, found, err
}

func (r readOnly) List(_ context.Context, bucket string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := r.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte{}, v...)
			return nil
		})
	})
	return out, err
}

func (r readOnly) Close() error { return nil }

// ErrNoState is wrapped by Read's error when there is neither a weft
// socket nor a state file: weft has never run here, or runs elsewhere.
var ErrNoState = errors.New("no weft found")

// Options say where Read looks.
type Options struct {
	// Socket is the plugin socket; empty: the one FindSockets finds (an
	// error when there are several).
	Socket string
	// StateFile is read when no weft answers; empty: none.
	StateFile string
	// PluginsDir is where FindSockets looks; empty: /run/docker/plugins.
	PluginsDir string
	// StateFileIsDefault says StateFile was not given: when it does not
	// exist, the state file of the one managed weft plugin is read instead
	// (ManagedStateFiles).
	StateFileIsDefault bool
	// DockerPluginsRoot is where ManagedStateFiles looks; empty:
	// /var/lib/docker/plugins (dockerd's default --data-root).
	DockerPluginsRoot string
}

// dockerPluginsRoot is where dockerd keeps managed plugins by default:
// <data-root>/plugins/<id>/, with rootfs/ and propagated-mount/.
const dockerPluginsRoot = "/var/lib/docker/plugins"

// ManagedStateFiles returns the state files of managed weft plugins that
// keep their state in Docker's directory for the plugin (no state.source):
// root/<id>/propagated-mount/weft.db.
func ManagedStateFiles(root string) []string {
	found, _ := filepath.Glob(filepath.Join(cmp.Or(root, dockerPluginsRoot), "*", "propagated-mount", "weft.db"))
	return found
}

// FindSocket returns o.Socket, or the one weft socket FindSockets finds
// ("" when there is none); several are an error.
func (o Options) FindSocket() (string, error) {
	if o.Socket != "" {
		return o.Socket, nil
	}
	switch found := FindSockets(cmp.Or(o.PluginsDir, pluginsDir)); len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("several weft sockets found (%s); choose one with --socket", strings.Join(found, ", "))
	}
}

// Read returns the status from the running weft, or from the state file
// when no weft answers on the socket.
func Read(ctx context.Context, o Options) (*plugin.Status, error) {
	sock, err := o.FindSocket()
	if err != nil {
		return nil, err
	}
	var sockErr error
	if sock != "" {
		s, err := FromSocket(ctx, sock)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, ErrNotRunning) || o.StateFile == "" {
			return nil, err
		}
		sockErr = err
	}
	if _, err := os.Stat(o.StateFile); o.StateFileIsDefault && errors.Is(err, fs.ErrNotExist) {
		switch found := ManagedStateFiles(o.DockerPluginsRoot); len(found) {
		case 0:
		case 1:
			o.StateFile = found[0]
		default:
			return nil, fmt.Errorf("several managed weft plugins' state files found (%s); choose one with --state-file", strings.Join(found, ", "))
		}
	}
	if sock == "" {
		if _, err := os.Stat(o.StateFile); o.StateFile == "" || errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no weft socket under %s and no state file at %q (%w): is weft running? "+
				"Give --socket for a weft elsewhere, or --state-file to read a stopped weft's weft.db", cmp.Or(o.PluginsDir, pluginsDir), o.StateFile, ErrNoState)
		}
	}
	s, err := FromFile(ctx, o.StateFile)
	if err != nil && sockErr != nil {
		return nil, fmt.Errorf("%w; and %w", sockErr, err)
	}
	return s, err
}
