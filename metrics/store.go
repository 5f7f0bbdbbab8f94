package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/weftnet/weft/store"
)

// Store labels of weft_store_operation_duration_seconds.
const (
	StoreLocal   = "local"   // weft.db
	StoreCluster = "cluster" // etcd (WEFT_STORE)
)

// Store returns s with each call timed and each failure counted under
// store="local"; s itself when m is nil.
func (m *Metrics) Store(s store.Store) store.Store {
	if m == nil {
		return s
	}
	return &timedStore{Store: s, m: m, label: StoreLocal}
}

// Cluster returns c with its reads and writes timed and failures counted
// under store="cluster" (leases and watches pass through untimed: they
// last as long as weft does); c itself when m is nil.
func (m *Metrics) Cluster(c store.Cluster) store.Cluster {
	if m == nil {
		return c
	}
	return &timedCluster{Cluster: c, t: timedStore{Store: c, m: m, label: StoreCluster}}
}

// observe records one call that began at start. A create that finds its
// key taken (ErrExists) or a transaction whose condition no longer holds
// (ErrConflict) is an answer, the way two hosts learn they raced, not a
// failure of the store.
func (m *Metrics) observe(label, op string, start time.Time, err error) {
	m.storeTime.WithLabelValues(label, op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrConflict) {
		m.storeErrs.WithLabelValues(label, op).Inc()
	}
}

type timedStore struct {
	store.Store
	m     *Metrics
	label string
}

func (s *timedStore) Apply(ctx context.Context, ops ...store.Op) error {
	start := time.Now()
	err := s.Store.Apply(ctx, ops...)
	s.m.observe(s.label, "apply", start, err)
	return err
}

func (s *timedStore) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	start := time.Now()
	v, ok, err := s.Store.Get(ctx, bucket, key)
	s.m.observe(s.label, "get", start, err)
	return v, ok, err
}

func (s *timedStore) List(ctx context.Context, bucket string) (map[string][]byte, error) {
	start := time.Now()
	v, err := s.Store.List(ctx, bucket)
	s.m.observe(s.label, "list", start, err)
	return v, err
}

// timedCluster times a cluster store's reads and writes.
type timedCluster struct {
	store.Cluster
	t timedStore
}

func (c *timedCluster) Apply(ctx context.Context, ops ...store.Op) error {
	return c.t.Apply(ctx, ops...)
}

func (c *timedCluster) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	return c.t.Get(ctx, bucket, key)
}

func (c *timedCluster) List(ctx context.Context, bucket string) (map[string][]byte, error) {
	return c.t.List(ctx, bucket)
}

func (c *timedCluster) GetItem(ctx context.Context, bucket, key string) (store.Item, bool, int64, error) {
	start := time.Now()
	it, ok, rev, err := c.Cluster.GetItem(ctx, bucket, key)
	c.t.m.observe(StoreCluster, "get", start, err)
	return it, ok, rev, err
}

func (c *timedCluster) ListItems(ctx context.Context, bucket string) ([]store.Item, int64, error) {
	start := time.Now()
	items, rev, err := c.Cluster.ListItems(ctx, bucket)
	c.t.m.observe(StoreCluster, "list", start, err)
	return items, rev, err
}

func (c *timedCluster) Create(ctx context.Context, op store.Op) (int64, error) {
	start := time.Now()
	rev, err := c.Cluster.Create(ctx, op)
	c.t.m.observe(StoreCluster, "create", start, err)
	return rev, err
}

func (c *timedCluster) Txn(ctx context.Context, conds []store.Cond, ops ...store.Op) (int64, error) {
	start := time.Now()
	rev, err := c.Cluster.Txn(ctx, conds, ops...)
	c.t.m.observe(StoreCluster, "txn", start, err)
	return rev, err
}
