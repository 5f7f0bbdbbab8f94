package bolt

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/weftnet/weft/store"
)

// TestRevisionsSurviveReopen: the store revision and every key's mod
// revision are in the file, so a Txn prepared before a restart still
// compares right after it, and revisions keep growing.
func TestRevisionsSurviveReopen(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path)
	ctx := t.Context()
	rev, err := s.Txn(ctx, nil, store.Put("pools", "p", []byte("v1")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path)
	it, ok, cur, err := s.GetItem(ctx, "pools", "p")
	if err != nil || !ok || it.ModRev != rev || cur != rev {
		t.Fatalf("after reopen: GetItem = %+v, %v, rev %d, %v; want ModRev and store revision %d", it, ok, cur, err, rev)
	}
	rev2, err := s.Txn(ctx, []store.Cond{store.Unchanged("pools", "p", rev)}, store.Put("pools", "p", []byte("v2")))
	if err != nil || rev2 <= rev {
		t.Fatalf("Txn on the revision read before the restart: rev %d, %v", rev2, err)
	}
	// The history before Open is gone: such a watch must re-list.
	resp := <-s.Watch(ctx, "pools", rev)
	if !errors.Is(resp.Err, store.ErrCompacted) {
		t.Fatalf("watch from before Open: %+v, want store.ErrCompacted", resp)
	}
}

// TestLegacyFileGetsRevisions: a file written before revisions existed (no
// meta/rev, no revision records) opens with its records at revision 1.
func TestLegacyFileGetsRevisions(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it look like a file from before: drop the revision records,
	// then add a record the old way.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte(store.MetaBucket))
		if err := meta.Delete([]byte(revKey)); err != nil {
			return err
		}
		return meta.DeleteBucket([]byte(revsBucket))
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	writeRaw(t, path, "networks", "n1", "old")

	s = mustOpen(t, path)
	ctx := t.Context()
	it, ok, rev, err := s.GetItem(ctx, "networks", "n1")
	if err != nil || !ok || it.ModRev != legacyRev || rev != legacyRev || string(it.Value) != "old" {
		t.Fatalf("legacy record: GetItem = %+v, %v, rev %d, %v", it, ok, rev, err)
	}
	if _, err := s.Txn(ctx, []store.Cond{store.Unchanged("networks", "n1", legacyRev)}, store.Put("networks", "n1", []byte("new"))); err != nil {
		t.Fatalf("Txn on a legacy record's revision: %v", err)
	}
	if _, err := s.Create(ctx, store.Put("networks", "n1", []byte("x"))); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Create over a legacy record: %v", err)
	}
}

// TestLeasedRecordsEndWithTheProcess: leases are in-process, so their
// records are deleted at Close, and at the next Open if the process died
// without closing (simulated by writing a leased record's revision record
// directly).
func TestLeasedRecordsEndWithTheProcess(t *testing.T) {
	path := tempPath(t)
	s := mustOpen(t, path)
	ctx := t.Context()
	id, err := s.Grant(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, store.PutLeased("hosts", "me", []byte("x"), id), store.Put("hosts", "kept", []byte("y"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path)
	wantKeys(t, s, "hosts", "kept")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A crash: the record and its lease are in the file, nobody closed.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, _, err := commitOps(tx, []store.Op{store.PutLeased("hosts", "crashed", []byte("z"), 42)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	s = mustOpen(t, path)
	wantKeys(t, s, "hosts", "kept")
}

func wantKeys(t *testing.T, s *Store, bucket string, keys ...string) {
	t.Helper()
	items, _, err := s.ListItems(t.Context(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Key)
	}
	if len(got) != len(keys) {
		t.Fatalf("%s holds %q, want %q", bucket, got, keys)
	}
	for i := range keys {
		if got[i] != keys[i] {
			t.Fatalf("%s holds %q, want %q", bucket, got, keys)
		}
	}
}
