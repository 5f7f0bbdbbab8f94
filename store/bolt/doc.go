// Package bolt is weft's default store: one bbolt file in the state directory
// (WEFT_STATE_DIR/weft.db), for a single host with no cluster to run.
//
// Why bbolt: it is an embedded, single-file, transactional key/value store
// with one writer at a time and fsync on every commit, which is exactly the
// store.Store contract (atomic Apply, durable before it returns) with no
// daemon to run and no temp-file-and-rename dance to get right.
//
// Layout: each store bucket is a top-level bbolt bucket, created on the first
// put into it. The bucket store.MetaBucket ("meta") holds "schema", the
// store.SchemaVersion in decimal, written when the file is created. Open
// refuses a file written by a newer weft (store.ErrNewerSchema) and a bbolt
// file that is not weft's, so weft never rewrites state it does not
// understand.
//
// Cluster contract on one host: Store also implements store.Cluster, so
// code written for a shared store runs, and is tested, on bbolt too. The
// store revision and each key's mod revision and lease are kept in the meta
// bucket (meta/rev, meta/revs/<bucket>/<key>), written in the same
// transaction as the records, so revisions survive a restart; a file from
// before they existed opens with its records at revision 1. Watches and
// leases are in-process: the watch history starts at Open (a watch from an
// earlier revision gets store.ErrCompacted) and keeps at least the last
// HistoryKeep changes; leases end when the store is closed or its process dies, and
// their records are deleted then (at Close, or at the next Open after a
// crash). An older weft that writes the file ignores the revision records,
// which would then be stale; versions do not go backwards in practice.
//
// One process at a time: bbolt takes an exclusive flock on the file. A second
// weft pointed at the same state directory gets a clear error after
// LockTimeout instead of hanging. The lock belongs to the open file, so a
// killed weft releases it at once.
//
// Cost: every Apply is one bbolt read-write transaction, which commits with
// two fdatasyncs (the data pages, then the meta page); writers are
// serialised, and the cost hardly depends on how many ops one Apply holds.
// So batch the ops of one request into one Apply. BenchmarkApply measures it
// (a few hundred µs to about 1 ms per Apply on the ext4 VM disk it was first
// run on); a Get is under 1 µs.
package bolt
