package bolt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/storetest"
)

// tempPath returns a state file path under a directory that does not exist
// yet, so every test also exercises the directory creation.
func tempPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "state", "weft.db")
}

func mustOpen(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.ClusterSuite{
		Open: func(t *testing.T) store.Cluster {
			s, err := Open(tempPath(t))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			path := s.(*Store).Path()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			ns, err := Open(path)
			if err != nil {
				t.Fatalf("reopening: %v", err)
			}
			return ns
		},
	}.Run(t)
}

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path)
	if s.db.NoSync {
		t.Fatal("NoSync is set: Apply would return before the data is on disk")
	}
	for p, want := range map[string]os.FileMode{filepath.Dir(path): dirMode, path: fileMode} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", p, got, want)
		}
	}
}

func TestOpenRefusesADirectoryPathThatIsAFile(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "state")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(blocker, "weft.db"))
	if err == nil || !strings.Contains(err.Error(), "creating state directory "+blocker) {
		t.Fatalf("Open under a regular file: err = %v, want it to name the directory", err)
	}
}

// rawSchema reads meta/schema with bbolt directly.
func rawSchema(t *testing.T, path string) string {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(store.MetaBucket))
		if b == nil {
			return errors.New("no meta bucket")
		}
		v = string(b.Get([]byte(schemaKey)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// writeRaw writes one key with bbolt directly, as another program would.
func writeRaw(t *testing.T, path, bucket, key, value string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte(value))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersionWritten(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := rawSchema(t, path), strconv.Itoa(store.SchemaVersion); got != want {
		t.Fatalf("meta/schema = %q, want %q", got, want)
	}
	// Reopening a current file leaves the stamp alone.
	s = mustOpen(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := rawSchema(t, path), strconv.Itoa(store.SchemaVersion); got != want {
		t.Fatalf("after reopen meta/schema = %q, want %q", got, want)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := tempPath(t)
	newer := store.SchemaVersion + 1
	writeRaw(t, path, store.MetaBucket, schemaKey, strconv.Itoa(newer))
	writeRaw(t, path, "networks", "n1", "from the future")

	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer state file succeeded")
	}
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("err = %v, want one wrapping store.ErrNewerSchema", err)
	}
	for _, want := range []string{path, "version " + strconv.Itoa(newer), "up to version " + strconv.Itoa(store.SchemaVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Refusing released the file and left it untouched.
	if got := rawSchema(t, path); got != strconv.Itoa(newer) {
		t.Fatalf("meta/schema = %q after a refused Open, want %d", got, newer)
	}
}

func TestUnreadableSchemaRefused(t *testing.T) {
	for _, v := range []string{"", "one", "0", "-3"} {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) {
			path := tempPath(t)
			writeRaw(t, path, store.MetaBucket, schemaKey, v)
			s, err := Open(path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), "unreadable schema version") || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want an unreadable schema version error naming the file", err)
			}
		})
	}
}

func TestForeignBoltFileRefused(t *testing.T) {
	path := tempPath(t)
	writeRaw(t, path, "someone-else", "k", "v")
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a bbolt file without weft's schema succeeded")
	}
	if !strings.Contains(err.Error(), "not written by weft") || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want it to say the file is not weft's and name it", err)
	}
}

func TestGarbageFileRefused(t *testing.T) {
	path := tempPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bolt file\n", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a garbage file succeeded")
	}
	if !strings.Contains(err.Error(), "damaged or is not a weft state file") || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want a damaged-file error naming the file", err)
	}
}

func TestLockedFileGivesClearErrorQuickly(t *testing.T) {
	path := tempPath(t)
	first := mustOpen(t, path)

	start := time.Now()
	second, err := Open(path)
	took := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("a second Open of a locked file succeeded")
	}
	want := "state file " + path + " is locked by another weft process"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to contain %q", err, want)
	}
	if took > LockTimeout+500*time.Millisecond {
		t.Fatalf("Open took %v to give up, want about %v", took, LockTimeout)
	}
	t.Logf("locked: %v (after %v)", err, took.Round(time.Millisecond))

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path)
}

func TestFailedApplyRollsBackMidTransaction(t *testing.T) {
	// A key too large for bbolt fails inside the transaction, after the
	// first put has been made: the whole transaction must roll back.
	s := mustOpen(t, tempPath(t))
	ctx := t.Context()
	err := s.Apply(ctx,
		store.Put("b", "first", []byte("v")),
		store.Put("b", strings.Repeat("k", bbolt.MaxKeySize+1), []byte("v")),
	)
	if err == nil {
		t.Fatal("Apply of an oversized key succeeded")
	}
	if !strings.Contains(err.Error(), s.Path()) {
		t.Errorf("err = %v, want it to name the file", err)
	}
	if _, ok, err := s.Get(ctx, "b", "first"); err != nil || ok {
		t.Fatalf("Get(b, first) = %v, %v after a rolled-back Apply; want missing", ok, err)
	}
}

func TestCloseThenOpenSeesEverything(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path)
	ctx := t.Context()
	want := map[string]string{}
	for i := range 50 {
		k, v := fmt.Sprintf("%064x", i), fmt.Sprintf(`{"n":%d}`, i)
		want[k] = v
		if err := s.Apply(ctx, store.Put("networks", k, []byte(v))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path)
	got, err := s.List(ctx, "networks")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("after reopen List has %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Fatalf("after reopen %s = %q, want %q", k, got[k], v)
		}
	}
}

// helperEnv, when set, turns TestKilledWeftLosesNothing into the child
// process that holds the store open until it is killed.
const helperEnv = "WEFT_BOLT_TEST_CHILD_STATE_FILE"

// TestKilledWeftLosesNothing runs a child process that opens the store,
// applies, reports, and then is killed with SIGKILL without Close: what
// Apply acknowledged must be there, and the lock must be gone with the
// process. While the child lives, the lock must stop this process.
func TestKilledWeftLosesNothing(t *testing.T) {
	if path := os.Getenv(helperEnv); path != "" {
		runChild(path)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := tempPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWeftLosesNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child exits if this test dies
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		if line != "applied" {
			t.Fatalf("child said %q, want \"applied\"", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not report within 30s")
	}

	// Another process holds the lock now.
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("Open succeeded while another process has the file open")
	} else if !strings.Contains(err.Error(), "locked by another weft process") {
		t.Fatalf("Open while the child runs: err = %v, want a locked error", err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"
	killed = true

	s := mustOpen(t, path)
	got, err := s.List(t.Context(), "endpoints")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != childApplies {
		t.Fatalf("after the kill the store has %d endpoints, want %d", len(got), childApplies)
	}
	for i := range childApplies {
		k := fmt.Sprintf("ep%03d", i)
		if string(got[k]) != "payload "+k {
			t.Fatalf("after the kill %s = %q, want %q", k, got[k], "payload "+k)
		}
	}
}

const childApplies = 20

func runChild(path string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	s, err := Open(path)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	for i := range childApplies {
		k := fmt.Sprintf("ep%03d", i)
		if err := s.Apply(ctx, store.Put("endpoints", k, []byte("payload "+k))); err != nil {
			fail(err)
		}
	}
	fmt.Println("applied")
	// Hold the store open, never Close; wait to be killed (or for the
	// parent to go away, which closes stdin).
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}
