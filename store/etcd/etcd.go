package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/weftnet/weft/store"
)

// Defaults of Config. The dial timeout and keepalive follow etcd's client
// documentation and what Kubernetes and Calico run with (dial timeout
// 5–20 s, keepalive 30 s / 10 s).
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultKeepAliveTime    = 30 * time.Second
	DefaultKeepAliveTimeout = 10 * time.Second
	DefaultRequestTimeout   = 10 * time.Second
	// DefaultMaxTxnOps is etcd's default --max-txn-ops.
	DefaultMaxTxnOps = 128
	// maxTxnBytes keeps one transaction well under etcd's default
	// --max-request-bytes (1.5 MiB).
	maxTxnBytes = 1 << 20
)

// Config says how to reach an etcd cluster and which part of it is weft's.
type Config struct {
	// Endpoints are the etcd client URLs: http://host:port,
	// https://host:port, or unix:///path (unix://name:port for a socket
	// named "name:port" relative to the current directory).
	Endpoints []string
	// Cluster names this weft cluster; its records live under
	// Prefix(Cluster). Empty means "default".
	Cluster string
	// CertFile and KeyFile, if set, are this client's TLS certificate and
	// key; CAFile, if set, is the CA bundle that signed the etcd servers'
	// certificates. Setting any of them turns TLS on.
	CertFile, KeyFile, CAFile string
	// TLSServerName, if set, is the name the servers' certificates must
	// carry, for endpoints whose host is not that name (an IP address, or
	// a unix socket). Empty means the endpoint's host.
	TLSServerName string
	// DialTimeout bounds Open's first contact with etcd. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// KeepAliveTime and KeepAliveTimeout are the client's gRPC keepalive:
	// ping after this long without traffic, and give the connection up
	// when a ping is not answered in time. Zero means the defaults.
	KeepAliveTime, KeepAliveTimeout time.Duration
	// RequestTimeout bounds every call except Watch and KeepAlive, on top
	// of the caller's context. Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxTxnOps is the servers' --max-txn-ops; Apply splits bigger writes
	// (see the package documentation). Zero means DefaultMaxTxnOps.
	MaxTxnOps int
}

// Prefix returns the etcd key prefix of a weft cluster's records.
func Prefix(cluster string) string { return "/weft/" + cluster + "/" }

// schemaKey is the key of the schema version in the prefix's meta area.
const schemaKey = store.MetaBucket + "/schema"

// Store is a store.Cluster on etcd. It is safe for concurrent use.
type Store struct {
	cli    *clientv3.Client
	cfg    Config
	prefix string
	name   string // for errors: the prefix and the endpoints
	closed atomic.Bool
}

var _ store.Cluster = (*Store)(nil)

// Open connects to etcd, then stamps a new weft cluster with
// store.SchemaVersion or checks that an existing one is readable (an error
// wrapping store.ErrNewerSchema if a newer weft wrote it). It fails within
// ctx's deadline and Config.DialTimeout if etcd cannot be reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("opening the etcd store: no endpoints given")
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "default"
	}
	if strings.ContainsAny(cfg.Cluster, "/\x00") || strings.TrimSpace(cfg.Cluster) != cfg.Cluster {
		return nil, fmt.Errorf("opening the etcd store: cluster name %q must not contain '/' or NUL or start or end with spaces", cfg.Cluster)
	}
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.KeepAliveTime, DefaultKeepAliveTime)
	setDefault(&cfg.KeepAliveTimeout, DefaultKeepAliveTimeout)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	s := &Store{cfg: cfg, prefix: Prefix(cfg.Cluster)}
	s.name = fmt.Sprintf("etcd store %s at %s", s.prefix, strings.Join(cfg.Endpoints, ","))

	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the %s: %w", s.name, err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    cfg.KeepAliveTime,
		DialKeepAliveTimeout: cfg.KeepAliveTimeout,
		TLS:                  tlsCfg,
		// The client's own log lines would land, unexplained, in weft's
		// log; its errors reach weft's callers instead.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the %s: %w", s.name, err)
	}
	s.cli = cli
	octx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := s.checkSchema(octx); err != nil {
		_ = cli.Close() // the schema error is the one to report
		return nil, err
	}
	return s, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// TLSConfig is the TLS configuration Open uses for cfg (nil without TLS),
// for other clients of the same endpoints (weft doctor reads etcd's clock
// over HTTPS with it).
func TLSConfig(cfg Config) (*tls.Config, error) { return tlsConfig(cfg) }

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.CertFile == "" && cfg.KeyFile == "" && cfg.CAFile == "" {
		if cfg.TLSServerName != "" {
			return nil, errors.New("a TLS server name is set but no TLS certificate or CA file")
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("a TLS client certificate needs both a certificate file and a key file")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the TLS client certificate %s and key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the etcd CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the etcd CA bundle %s holds no PEM certificate", cfg.CAFile)
		}
		c.RootCAs = pool
	}
	if name := cfg.TLSServerName; name != "" {
		// gRPC sets tls.Config.ServerName from each endpoint's address,
		// overriding ours, so check the name here instead: Go skips only
		// its own check, and this one verifies the same chain against the
		// same roots, for the given name.
		c.InsecureSkipVerify = true
		roots := c.RootCAs
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the etcd server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				DNSName: name, Roots: roots, Intermediates: inter,
			})
			return err
		}
	}
	return c, nil
}

func (s *Store) checkSchema(ctx context.Context) error {
	key := s.prefix + schemaKey
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, strconv.Itoa(store.SchemaVersion))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return s.wrap(ctx, "checking the schema version of", err)
	}
	if resp.Succeeded {
		return nil // a new weft cluster, now stamped
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return fmt.Errorf("checking the schema version of the %s: the record vanished while it was read; try again", s.name)
	}
	raw := string(kvs[0].Value)
	v, err := strconv.Atoi(raw)
	if err != nil || v < 1 {
		return fmt.Errorf("the %s has an unreadable schema version %q at %s: "+
			"the records are damaged or were not written by weft; use another cluster name", s.name, raw, key)
	}
	if v > store.SchemaVersion {
		return fmt.Errorf("the %s has schema version %d but this weft reads up to version %d (%w): "+
			"upgrade this weft to match the other hosts", s.name, v, store.SchemaVersion, store.ErrNewerSchema)
	}
	return nil
}

// Client returns the etcd client, for what the store does not offer (a
// concurrency.Session, say). Closing the Store closes it.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Name describes the store for errors and logs: its prefix and endpoints.
func (s *Store) Name() string { return s.name }

func (s *Store) key(bucket, key string) string { return s.prefix + bucket + "/" + key }

func (s *Store) bucketPrefix(bucket string) string { return s.prefix + bucket + "/" }

// call returns a context for one unary request: the caller's, bounded by
// RequestTimeout. It fails at once if the store is closed or ctx is done.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	c, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	return c, cancel, nil
}

// wrap turns a client error into one for the operator: it names the store
// and its endpoints, says what an unreachable etcd looks like, and keeps
// the sentinels callers test with errors.Is.
func (s *Store) wrap(ctx context.Context, action string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case s.closed.Load():
		return fmt.Errorf("%s the %s: %w", action, s.name, store.ErrClosed)
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrClosed):
		return fmt.Errorf("%s the %s: %w", action, s.name, err)
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return fmt.Errorf("%s the %s: %w", action, s.name, store.ErrNoLease)
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%s the %s: %w", action, s.name, store.ErrCompacted)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s the %s: etcd did not answer in time; check that etcd is running and reachable from this host (%w)",
			action, s.name, err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return fmt.Errorf("%s the %s: %w", action, s.name, ctx.Err())
	case errors.Is(err, rpctypes.ErrTooManyOps), errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%s the %s: etcd refused the transaction as too large; "+
			"set weft's etcd MaxTxnOps to the server's --max-txn-ops (%w)", action, s.name, err)
	}
	return fmt.Errorf("%s the %s: %w", action, s.name, err)
}

func (s *Store) check(ctx context.Context, action string, bucket string) error {
	if s.closed.Load() {
		return fmt.Errorf("%s the %s: %w", action, s.name, store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s the %s: %w", action, s.name, err)
	}
	if err := store.CheckBucket(bucket); err != nil {
		return fmt.Errorf("%s the %s: %w", action, s.name, err)
	}
	return nil
}

// Apply writes ops: in one transaction if their keys fit in one, else in
// consecutive ones (see the package documentation).
func (s *Store) Apply(ctx context.Context, ops ...store.Op) error {
	const action = "saving state to"
	if s.closed.Load() {
		return fmt.Errorf("%s the %s: %w", action, s.name, store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s the %s: %w", action, s.name, err)
	}
	if err := store.CheckOps(ops); err != nil {
		return fmt.Errorf("%s the %s: %w", action, s.name, err)
	}
	parts := split(store.Collapse(ops), s.cfg.MaxTxnOps, maxTxnBytes)
	for i, part := range parts {
		if err := s.commitPart(ctx, part); err != nil {
			werr := s.wrap(ctx, action, err)
			if i > 0 {
				return fmt.Errorf("%w; this write of %d keys was split in %d parts of at most %d, and parts 1–%d "+
					"were committed before (%w): apply it again to complete it",
					werr, len(store.Collapse(ops)), len(parts), s.cfg.MaxTxnOps, i, store.ErrIncomplete)
			}
			return werr
		}
	}
	return nil
}

func (s *Store) commitPart(ctx context.Context, part []store.Op) error {
	c, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	_, err = s.cli.Txn(c).Then(s.etcdOps(part)...).Commit()
	return err
}

// split cuts ops into parts of at most maxOps ops and about maxBytes bytes.
func split(ops []store.Op, maxOps, maxBytes int) [][]store.Op {
	var (
		parts [][]store.Op
		cur   []store.Op
		size  int
	)
	for _, op := range ops {
		n := len(op.Bucket) + len(op.Key) + len(op.Value) + 64
		if len(cur) > 0 && (len(cur) == maxOps || size+n > maxBytes) {
			parts = append(parts, cur)
			cur, size = nil, 0
		}
		cur = append(cur, op)
		size += n
	}
	if len(cur) > 0 {
		parts = append(parts, cur)
	}
	return parts
}

func (s *Store) etcdOps(ops []store.Op) []clientv3.Op {
	out := make([]clientv3.Op, 0, len(ops))
	for _, op := range ops {
		k := s.key(op.Bucket, op.Key)
		switch {
		case op.Value == nil:
			out = append(out, clientv3.OpDelete(k))
		case op.Lease != store.NoLease:
			out = append(out, clientv3.OpPut(k, string(op.Value), clientv3.WithLease(clientv3.LeaseID(op.Lease))))
		default:
			out = append(out, clientv3.OpPut(k, string(op.Value)))
		}
	}
	return out
}

// Get returns the value of bucket/key.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	it, ok, _, err := s.GetItem(ctx, bucket, key)
	return it.Value, ok, err
}

// List returns every key and value of bucket.
func (s *Store) List(ctx context.Context, bucket string) (map[string][]byte, error) {
	items, _, err := s.ListItems(ctx, bucket)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(items))
	for _, it := range items {
		out[it.Key] = it.Value
	}
	return out, nil
}

// GetItem returns bucket/key with its mod revision.
func (s *Store) GetItem(ctx context.Context, bucket, key string) (store.Item, bool, int64, error) {
	const action = "reading state from"
	if err := s.check(ctx, action, bucket); err != nil {
		return store.Item{}, false, 0, err
	}
	c, cancel, err := s.call(ctx)
	if err != nil {
		return store.Item{}, false, 0, s.wrap(ctx, action, err)
	}
	defer cancel()
	resp, err := s.cli.Get(c, s.key(bucket, key))
	if err != nil {
		return store.Item{}, false, 0, s.wrap(ctx, action, err)
	}
	if len(resp.Kvs) == 0 {
		return store.Item{}, false, resp.Header.Revision, nil
	}
	return item(key, resp.Kvs[0]), true, resp.Header.Revision, nil
}

func item(key string, kv *mvccpb.KeyValue) store.Item {
	return store.Item{
		Key:    key,
		Value:  append([]byte{}, kv.Value...),
		ModRev: kv.ModRevision,
		Lease:  store.LeaseID(kv.Lease),
	}
}

// ListItems returns every record of bucket, sorted by key, read at one
// revision.
func (s *Store) ListItems(ctx context.Context, bucket string) ([]store.Item, int64, error) {
	const action = "reading state from"
	if err := s.check(ctx, action, bucket); err != nil {
		return nil, 0, err
	}
	c, cancel, err := s.call(ctx)
	if err != nil {
		return nil, 0, s.wrap(ctx, action, err)
	}
	defer cancel()
	p := s.bucketPrefix(bucket)
	resp, err := s.cli.Get(c, p, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, s.wrap(ctx, action, err)
	}
	out := make([]store.Item, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, item(strings.TrimPrefix(string(kv.Key), p), kv))
	}
	return out, resp.Header.Revision, nil
}

// Create writes op only if its key does not exist.
func (s *Store) Create(ctx context.Context, op store.Op) (int64, error) {
	const action = "creating a record in"
	if op.Value == nil {
		return 0, fmt.Errorf("%s the %s: a create of %s/%s needs a value: %w", action, s.name, op.Bucket, op.Key, store.ErrInvalid)
	}
	if err := store.CheckOps([]store.Op{op}); err != nil {
		return 0, fmt.Errorf("%s the %s: %w", action, s.name, err)
	}
	c, cancel, err := s.call(ctx)
	if err != nil {
		return 0, s.wrap(ctx, action, err)
	}
	defer cancel()
	k := s.key(op.Bucket, op.Key)
	resp, err := s.cli.Txn(c).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(s.etcdOps([]store.Op{op})...).
		Commit()
	if err != nil {
		return 0, s.wrap(ctx, action, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%s the %s: %s/%s: %w", action, s.name, op.Bucket, op.Key, store.ErrExists)
	}
	return resp.Header.Revision, nil
}

// Txn writes ops in one etcd transaction if every cond holds.
func (s *Store) Txn(ctx context.Context, conds []store.Cond, ops ...store.Op) (int64, error) {
	const action = "saving state to"
	if err := store.CheckTxn(conds, ops); err != nil {
		return 0, fmt.Errorf("%s the %s: %w", action, s.name, err)
	}
	c, cancel, err := s.call(ctx)
	if err != nil {
		return 0, s.wrap(ctx, action, err)
	}
	defer cancel()
	cmps := make([]clientv3.Cmp, 0, len(conds))
	for _, cd := range conds {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.key(cd.Bucket, cd.Key)), "=", cd.ModRev))
	}
	resp, err := s.cli.Txn(c).If(cmps...).Then(s.etcdOps(store.Collapse(ops))...).Commit()
	if err != nil {
		return 0, s.wrap(ctx, action, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%s the %s: a record changed since it was read: %w", action, s.name, store.ErrConflict)
	}
	return resp.Header.Revision, nil
}

// Watch delivers the changes to bucket from fromRev on, over an etcd watch.
func (s *Store) Watch(ctx context.Context, bucket string, fromRev int64) <-chan store.WatchResponse {
	out := make(chan store.WatchResponse, 1)
	if err := s.check(context.Background(), "watching", bucket); err != nil {
		out <- store.WatchResponse{Err: err}
		close(out)
		return out
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	p := s.bucketPrefix(bucket)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.cli.Watch(wctx, p, opts...)
	go func() {
		defer close(out)
		defer cancel()
		send := func(r store.WatchResponse) bool {
			select {
			case out <- r:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(store.WatchResponse{Err: fmt.Errorf("watching bucket %q of the %s from revision %d: history up to revision %d is gone: %w",
					bucket, s.name, fromRev, resp.CompactRevision, store.ErrCompacted)})
				return
			}
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					send(store.WatchResponse{Err: s.wrap(ctx, "watching bucket "+strconv.Quote(bucket)+" of", err)})
				}
				return
			}
			if len(resp.Events) == 0 {
				continue
			}
			evs := make([]store.Event, 0, len(resp.Events))
			for _, e := range resp.Events {
				ev := store.Event{Key: strings.TrimPrefix(string(e.Kv.Key), p), ModRev: e.Kv.ModRevision}
				if e.Type == clientv3.EventTypeDelete {
					ev.Type = store.EventDelete
				} else {
					ev.Type = store.EventPut
					ev.Value = append([]byte{}, e.Kv.Value...)
					ev.Lease = store.LeaseID(e.Kv.Lease)
				}
				evs = append(evs, ev)
			}
			if !send(store.WatchResponse{Events: evs}) {
				return
			}
		}
		// The client closes the channel when ctx ends or the client is
		// closed.
		if ctx.Err() != nil {
			return
		}
		err := errors.New("the etcd watch ended unexpectedly")
		if s.closed.Load() {
			err = store.ErrClosed
		}
		send(store.WatchResponse{Err: fmt.Errorf("watching bucket %q of the %s: %w", bucket, s.name, err)})
	}()
	return out
}

// Compact discards etcd's history up to revision rev, as an operator's
// `etcdctl compact` would; a watch from rev or earlier then fails with
// store.ErrCompacted. It compacts the whole etcd, not only this prefix.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	c, cancel, err := s.call(ctx)
	if err != nil {
		return s.wrap(ctx, "compacting", err)
	}
	defer cancel()
	_, err = s.cli.Compact(c, rev)
	return s.wrap(ctx, "compacting", err)
}

// Grant creates an etcd lease of ttl, rounded up to whole seconds (etcd
// raises a TTL below its minimum, about 2 s by default).
func (s *Store) Grant(ctx context.Context, ttl time.Duration) (store.LeaseID, error) {
	const action = "granting a lease in"
	secs, err := store.CheckTTL(ttl)
	if err != nil {
		return store.NoLease, fmt.Errorf("%s the %s: %w", action, s.name, err)
	}
	c, cancel, err := s.call(ctx)
	if err != nil {
		return store.NoLease, s.wrap(ctx, action, err)
	}
	defer cancel()
	resp, err := s.cli.Grant(c, secs)
	if err != nil {
		return store.NoLease, s.wrap(ctx, action, err)
	}
	return store.LeaseID(resp.ID), nil
}

// KeepAlive renews the lease through the client's keepalive stream (a
// renewal every third of the TTL) until ctx ends or the lease is lost.
func (s *Store) KeepAlive(ctx context.Context, id store.LeaseID) error {
	action := fmt.Sprintf("keeping lease %x alive in", int64(id))
	if s.closed.Load() {
		return fmt.Errorf("%s the %s: %w", action, s.name, store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s the %s: %w", action, s.name, err)
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.cli.KeepAlive(kctx, clientv3.LeaseID(id))
	if err != nil {
		return s.wrap(ctx, action, err)
	}
	for range ch {
		// Only the channel's end matters: it closes when the lease is
		// lost or ctx ends.
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case s.closed.Load():
		return fmt.Errorf("%s the %s: %w", action, s.name, store.ErrClosed)
	}
	return fmt.Errorf("%s the %s: the lease expired, was revoked, or could not be renewed in time: %w",
		action, s.name, store.ErrNoLease)
}

// Revoke ends the lease; etcd deletes its records in one revision.
func (s *Store) Revoke(ctx context.Context, id store.LeaseID) error {
	action := fmt.Sprintf("revoking lease %x in", int64(id))
	c, cancel, err := s.call(ctx)
	if err != nil {
		return s.wrap(ctx, action, err)
	}
	defer cancel()
	_, err = s.cli.Revoke(c, clientv3.LeaseID(id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil // already gone: that is what the caller wanted
	}
	return s.wrap(ctx, action, err)
}

// Close closes the client; running watches and keepalives end. Calling it
// again does nothing. Leases are not revoked: they run out by their TTL,
// which is what a crash would do too.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("closing the %s: %w", s.name, err)
	}
	return nil
}
