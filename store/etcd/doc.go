// Package etcd is weft's cluster store: a store.Cluster on etcd v3
// (go.etcd.io/etcd/client/v3), so that the weft instances of several
// standalone Docker engines share pools, addresses, VNIs and hosts
// (docs/cluster-store.md). It runs against etcd 3.4 (Debian 12's
// etcd-server) and later.
//
// Layout: every record is one etcd key, Prefix(cluster) + bucket + "/" +
// key, with the record's value as the etcd value; the prefix is
// "/weft/<cluster>/", so that several weft clusters (or tests) can share one
// etcd. store.MetaBucket's area holds "<prefix>meta/schema", the
// store.SchemaVersion in decimal, written by the first weft to open the
// cluster; Open refuses a cluster written by a newer weft
// (store.ErrNewerSchema), as store/bolt does for its file.
//
// How the contract maps onto etcd: a store revision is etcd's revision and
// an Item's ModRev is the key's ModRevision; Create is
// Txn(If CreateRevision(k) == 0, Then Put) and Txn compares ModRevision (0
// for "absent"), as Calico and flannel do; Watch is an etcd prefix watch with
// WithRequireLeader (a member cut off from the quorum ends the watch instead
// of staying silent), and a compacted start revision ends it with
// store.ErrCompacted; leases are etcd leases.
//
// What is atomic: etcd commits at most --max-txn-ops keys (128 by default)
// in one transaction. Txn and Create are always one etcd transaction, hence
// atomic, and store.CheckTxn refuses a Txn above store.MaxTxnKeys. Apply
// first reduces its ops to one per key (the last op on a key wins); if at
// most Config.MaxTxnOps keys remain (and they fit in about 1 MiB), Apply is
// one transaction and fully atomic. A bigger Apply is committed as
// consecutive transactions in op order: each part is atomic, readers and
// watchers may see the parts one after the other, and if a later part fails
// the error wraps store.ErrIncomplete (retry the Apply: it is idempotent).
// Weft's own large Applies are its start-up clean-ups of stale records,
// for which this is harmless; keep a write that must be seen whole below
// store.MaxTxnKeys keys, or use Txn.
//
// Deadlines: every call is bounded by the caller's context and, except
// Watch and KeepAlive, by Config.RequestTimeout, so a dead etcd makes a
// request fail with an error naming the store and its endpoints instead of
// hanging dockerd. The client uses etcd's recommended keepalive (ping every
// 30 s, give up after 10 s without an answer; Kubernetes and Calico use
// the same) to notice a dead connection.
package etcd
