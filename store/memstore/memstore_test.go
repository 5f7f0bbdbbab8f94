package memstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/memstore"
	"github.com/weftnet/weft/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.ClusterSuite{Open: func(*testing.T) store.Cluster { return memstore.New() }}.Run(t)
}

func TestZeroValue(t *testing.T) {
	storetest.ClusterSuite{Open: func(*testing.T) store.Cluster { return &memstore.Store{} }}.Run(t)
}

func TestFailNext(t *testing.T) {
	s := memstore.New()
	ctx := t.Context()
	errDisk := errors.New("disk on fire")
	errNet := errors.New("etcd unreachable")
	s.FailNext(errDisk)
	s.FailNext(errNet)

	if err := s.Apply(ctx, store.Put("b", "k", []byte("1"))); err != errDisk { //nolint:errorlint // must be returned unchanged
		t.Fatalf("first Apply: err = %v, want %v", err, errDisk)
	}
	if err := s.Apply(ctx, store.Put("b", "k", []byte("2"))); !errors.Is(err, errNet) {
		t.Fatalf("second Apply: err = %v, want %v", err, errNet)
	}
	if _, ok, _ := s.Get(ctx, "b", "k"); ok {
		t.Fatal("a failed Apply wrote its value")
	}
	if err := s.Apply(ctx, store.Put("b", "k", []byte("3"))); err != nil {
		t.Fatalf("third Apply: %v", err)
	}
	if got := s.Applies(); got != 1 {
		t.Fatalf("Applies() = %d, want 1", got)
	}
}

func TestFailWhen(t *testing.T) {
	s := memstore.New()
	ctx := t.Context()
	errFull := errors.New("no space left")
	s.FailWhen(func(ops []store.Op) error {
		for _, op := range ops {
			if op.Bucket == "endpoints" {
				return errFull
			}
		}
		return nil
	})
	if err := s.Apply(ctx, store.Put("networks", "n", []byte("x"))); err != nil {
		t.Fatalf("Apply to networks: %v", err)
	}
	err := s.Apply(ctx, store.Put("networks", "n2", []byte("x")), store.Put("endpoints", "e", []byte("x")))
	if !errors.Is(err, errFull) {
		t.Fatalf("Apply touching endpoints: err = %v, want %v", err, errFull)
	}
	if _, ok, _ := s.Get(ctx, "networks", "n2"); ok {
		t.Fatal("a failed Apply wrote part of its ops")
	}
	s.FailWhen(nil)
	if err := s.Apply(ctx, store.Put("endpoints", "e", []byte("x"))); err != nil {
		t.Fatalf("Apply after FailWhen(nil): %v", err)
	}
	if got := s.Applies(); got != 2 {
		t.Fatalf("Applies() = %d, want 2", got)
	}
}

func TestOwnChecksBeatInjectedFailure(t *testing.T) {
	s := memstore.New()
	s.FailNext(errors.New("injected"))
	if err := s.Apply(t.Context(), store.Put(store.MetaBucket, "k", []byte("x"))); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Apply to the reserved bucket: err = %v, want store.ErrInvalid", err)
	}
	if err := s.Apply(t.Context()); err == nil || errors.Is(err, store.ErrInvalid) {
		t.Fatalf("the queued failure was not kept for the next Apply: err = %v", err)
	}
}

func TestExpireLeaseAndHistoryKeep(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx := t.Context()
	id, err := s.Grant(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, store.PutLeased("hosts", "me", []byte("x"), id)); err != nil {
		t.Fatal(err)
	}
	s.ExpireLease(id)
	if _, ok, _ := s.Get(ctx, "hosts", "me"); ok {
		t.Fatal("a record outlived its expired lease")
	}
	if err := s.KeepAlive(ctx, id); !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("KeepAlive of an expired lease: %v", err)
	}

	// The history keeps at least HistoryKeep changes and at most twice
	// as many: a watch from the first revision is compacted once more
	// than that were written.
	_, rev0, _ := s.ListItems(ctx, "b")
	for i := range 2*memstore.HistoryKeep + 1 {
		if err := s.Apply(ctx, store.Put("b", "k", fmt.Appendf(nil, "%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	resp := <-s.Watch(ctx, "b", rev0+1)
	if !errors.Is(resp.Err, store.ErrCompacted) {
		t.Fatalf("watch from before the kept history: %+v, want store.ErrCompacted", resp)
	}
}

func TestFailNextCoversTxnAndCreate(t *testing.T) {
	s := memstore.New()
	ctx := t.Context()
	errDisk := errors.New("disk on fire")
	s.FailNext(errDisk)
	s.FailNext(errDisk)
	if _, err := s.Txn(ctx, nil, store.Put("b", "k", []byte("1"))); err != errDisk { //nolint:errorlint // must be returned unchanged
		t.Fatalf("Txn: err = %v, want %v", err, errDisk)
	}
	if _, err := s.Create(ctx, store.Put("b", "k", []byte("1"))); !errors.Is(err, errDisk) {
		t.Fatalf("Create: err = %v, want %v", err, errDisk)
	}
	if _, err := s.Create(ctx, store.Put("b", "k", []byte("1"))); err != nil {
		t.Fatal(err)
	}
}
