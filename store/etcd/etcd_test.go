package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/store"
	"github.com/weftnet/weft/store/etcd"
	"github.com/weftnet/weft/store/etcd/etcdtest"
	"github.com/weftnet/weft/store/storetest"
)

func open(t *testing.T, cfg etcd.Config) *etcd.Store {
	t.Helper()
	s, err := etcd.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestConformance runs the whole store contract against one real etcd;
// every subtest gets its own cluster prefix, hence an empty store.
func TestConformance(t *testing.T) {
	c := etcdtest.Start(t)
	var n atomic.Int64
	cfgs := map[store.Store]etcd.Config{}
	storetest.ClusterSuite{
		Open: func(t *testing.T) store.Cluster {
			cfg := etcd.Config{Endpoints: c.Endpoints(), Cluster: fmt.Sprintf("conformance-%d", n.Add(1))}
			s := open(t, cfg)
			cfgs[s] = cfg
			return s
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			cfg := cfgs[s]
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			ns := open(t, cfg)
			cfgs[ns] = cfg
			return ns
		},
	}.Run(t)
}

func TestLayoutAndSchema(t *testing.T) {
	c := etcdtest.Start(t)
	s := open(t, etcd.Config{Endpoints: c.Endpoints(), Cluster: "lab"})
	defer s.Close()
	ctx := t.Context()
	if err := s.Apply(ctx, store.Put("networks", "n1/x", []byte("one"))); err != nil {
		t.Fatal(err)
	}
	cli := s.Client()
	resp, err := cli.Get(ctx, "/weft/lab/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	want := map[string]string{"/weft/lab/meta/schema": fmt.Sprint(store.SchemaVersion), "/weft/lab/networks/n1/x": "one"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("etcd holds %q, want %q", got, want)
	}

	// A cluster written by a newer weft is refused, naming the store.
	if _, err := cli.Put(ctx, "/weft/newer/meta/schema", "99"); err != nil {
		t.Fatal(err)
	}
	_, err = etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Cluster: "newer"})
	if !errors.Is(err, store.ErrNewerSchema) || !strings.Contains(err.Error(), "/weft/newer/") {
		t.Fatalf("Open of a newer cluster: err = %v, want store.ErrNewerSchema naming the prefix", err)
	}
	if _, err := cli.Put(ctx, "/weft/junk/meta/schema", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Cluster: "junk"}); err == nil {
		t.Fatal("Open of a cluster with an unreadable schema succeeded")
	}
	if _, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Cluster: "a/b"}); err == nil {
		t.Fatal("Open with a cluster name holding '/' succeeded")
	}
	if _, err := etcd.Open(ctx, etcd.Config{}); err == nil {
		t.Fatal("Open without endpoints succeeded")
	}
}

// TestLargeApplySplits checks what the package documentation promises: an
// Apply of at most MaxTxnOps keys is one revision (atomic), a bigger one is
// committed in parts of at most MaxTxnOps keys, in op order.
func TestLargeApplySplits(t *testing.T) {
	c := etcdtest.Start(t)
	s := open(t, etcd.Config{Endpoints: c.Endpoints(), Cluster: "split", MaxTxnOps: 10})
	defer s.Close()
	ctx := t.Context()
	revsOf := func(ops []store.Op) map[int64]int {
		t.Helper()
		if err := s.Apply(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		items, _, err := s.ListItems(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		revs := map[int64]int{}
		for _, it := range items {
			revs[it.ModRev]++
		}
		return revs
	}
	var ops []store.Op
	for i := range 10 {
		ops = append(ops, store.Put("b", fmt.Sprintf("k%02d", i), []byte("v")), store.Put("b", fmt.Sprintf("k%02d", i), []byte("w")))
	}
	if revs := revsOf(ops); len(revs) != 1 {
		t.Fatalf("an Apply of 20 ops on 10 keys took revisions %v, want one", revs)
	}
	ops = nil
	for i := range 25 {
		ops = append(ops, store.Put("b", fmt.Sprintf("k%02d", i), []byte("x")))
	}
	revs := revsOf(ops)
	if len(revs) != 3 {
		t.Fatalf("an Apply of 25 keys with MaxTxnOps 10 took revisions %v, want 3 parts", revs)
	}
	for rev, n := range revs {
		if n > 10 {
			t.Fatalf("revision %d wrote %d keys, more than MaxTxnOps", rev, n)
		}
	}

	// A part that fails after others were committed says so.
	ops = nil
	for i := range 25 {
		ops = append(ops, store.Put("c", fmt.Sprintf("k%02d", i), []byte("x")))
	}
	ops[24].Lease = 0x7eadbeef // no such lease: the third part fails
	err := s.Apply(ctx, ops...)
	if !errors.Is(err, store.ErrIncomplete) || !errors.Is(err, store.ErrNoLease) {
		t.Fatalf("Apply whose last part fails: err = %v, want store.ErrIncomplete and store.ErrNoLease", err)
	}
	t.Logf("incomplete: %v", err)
	got, err := s.List(ctx, "c")
	if err != nil || len(got) != 20 {
		t.Fatalf("after the failed third part: %d keys, %v; want the first two parts' 20", len(got), err)
	}
}

// TestDeadEndpointFailsFast: an etcd that is not there makes Open fail
// within its deadline, and an etcd that dies makes calls fail within the
// caller's deadline, both with errors that name the store's endpoints.
func TestDeadEndpointFailsFast(t *testing.T) {
	dead := "unix://" + filepath.Join(t.TempDir(), "nobody:2379")
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := etcd.Open(ctx, etcd.Config{Endpoints: []string{dead}, DialTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("Open of a dead endpoint succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open of a dead endpoint took %s, more than its 5 s deadline", d)
	}
	if !strings.Contains(err.Error(), dead) {
		t.Fatalf("Open error %q does not name the endpoint %s", err, dead)
	}
	t.Logf("dead endpoint: %v", err)

	c := etcdtest.Start(t)
	s := open(t, etcd.Config{Endpoints: c.Endpoints(), Cluster: "dies"})
	defer s.Close()
	if err := s.Apply(t.Context(), store.Put("b", "k", []byte("v"))); err != nil {
		t.Fatal(err)
	}
	c.Members[0].Kill(t)
	for _, call := range []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, _, err := s.Get(ctx, "b", "k"); return err }},
		{"Apply", func(ctx context.Context) error { return s.Apply(ctx, store.Put("b", "k", []byte("w"))) }},
		{"Txn", func(ctx context.Context) error {
			_, err := s.Txn(ctx, nil, store.Put("b", "k", []byte("w")))
			return err
		}},
		{"Grant", func(ctx context.Context) error { _, err := s.Grant(ctx, time.Minute); return err }},
	} {
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := call.fn(ctx)
		cancel()
		d := time.Since(start)
		if err == nil {
			t.Fatalf("%s on a dead etcd succeeded", call.name)
		}
		if d > 5*time.Second {
			t.Fatalf("%s on a dead etcd took %s; the caller's deadline was 2 s", call.name, d)
		}
		if !strings.Contains(err.Error(), c.Members[0].ClientURL) {
			t.Fatalf("%s error %q does not name the endpoint", call.name, err)
		}
	}
}

// TestThreeMembersSurviveOneStopped: with one of three members stopped the
// cluster keeps a quorum and the store keeps serving through the others;
// the member comes back and catches up.
func TestThreeMembersSurviveOneStopped(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	s := open(t, etcd.Config{Endpoints: c.Endpoints(), Cluster: "ha"})
	defer s.Close()
	ctx := t.Context()
	if err := s.Apply(ctx, store.Put("hosts", "a", []byte("1"))); err != nil {
		t.Fatal(err)
	}
	c.Members[0].Stop(t)
	// The client may first try the stopped member; poll until a write
	// succeeds through another one.
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = s.Create(cctx, store.Put("hosts", "b", []byte("2")))
		cancel()
		if err == nil || errors.Is(err, store.ErrExists) {
			err = nil
			break
		}
	}
	if err != nil {
		t.Fatalf("no write succeeded within 30 s with one of three members stopped: %v", err)
	}
	got, err := s.List(ctx, "hosts")
	if err != nil || len(got) != 2 {
		t.Fatalf("List with one member stopped = %q, %v", got, err)
	}
	c.Members[0].Restart(t)
	// The restarted member has the write made while it was down.
	only := open(t, etcd.Config{Endpoints: []string{c.Members[0].ClientURL}, Cluster: "ha"})
	defer only.Close()
	v, ok, err := only.Get(ctx, "hosts", "b")
	if err != nil || !ok || string(v) != "2" {
		t.Fatalf("restarted member: Get(hosts, b) = %q, %v, %v", v, ok, err)
	}
}

// TestTLS: with a client certificate, the CA and the server name the store
// talks to an etcd that requires them; without a client certificate it
// fails within its deadline, naming the store.
func TestTLS(t *testing.T) {
	c := etcdtest.StartTLS(t)
	f := c.TLS
	s := open(t, etcd.Config{
		Endpoints: c.Endpoints(), Cluster: "tls",
		CertFile: f.ClientCert, KeyFile: f.ClientKey, CAFile: f.CAFile, TLSServerName: f.ServerName,
	})
	defer s.Close()
	if err := s.Apply(t.Context(), store.Put("b", "k", []byte("v"))); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(t.Context(), "b", "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get over TLS = %q, %v, %v", v, ok, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := etcd.Open(ctx, etcd.Config{
		Endpoints: c.Endpoints(), Cluster: "tls", CAFile: f.CAFile, TLSServerName: f.ServerName, DialTimeout: 2 * time.Second,
	})
	if err == nil {
		t.Fatal("Open without a client certificate succeeded against an etcd that requires one")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open without a client certificate took %s", d)
	}
	t.Logf("no client certificate: %v", err)

	// A server whose certificate is not for the expected name is refused.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel2()
	if _, err := etcd.Open(ctx2, etcd.Config{
		Endpoints: c.Endpoints(), Cluster: "tls", DialTimeout: 2 * time.Second,
		CertFile: f.ClientCert, KeyFile: f.ClientKey, CAFile: f.CAFile, TLSServerName: "not-" + f.ServerName,
	}); err == nil {
		t.Fatal("Open accepted a server certificate for another name")
	}

	for _, bad := range []etcd.Config{
		{CertFile: f.ClientCert},
		{CAFile: filepath.Join(t.TempDir(), "missing.pem")},
		{TLSServerName: "x"},
	} {
		bad.Endpoints = c.Endpoints()
		if _, err := etcd.Open(t.Context(), bad); err == nil {
			t.Errorf("Open with TLS settings %+v succeeded", bad)
		}
	}
}
