// Package store persists weft's state behind one small key/value interface so
// that the embedded bbolt file (store/bolt, the default) and a cluster store
// (etcd, store/etcd) are interchangeable, and so that the plugin can be unit-tested
// against an in-memory fake (store/memstore).
//
// Why it exists: dockerd replays nothing to a network or IPAM plugin after the
// plugin or dockerd restarts, so what weft does not persist is forgotten. The
// plugin therefore writes every change through Apply and answers dockerd only
// after Apply returns ("durable before acknowledged").
//
// The contract every implementation keeps (store/storetest checks it):
//
//   - Data is grouped in buckets of string keys. A bucket exists as long as
//     it has keys; reading a bucket that was never written is not an error.
//   - Apply is atomic: a reader sees all of its ops or none of them, and a
//     failed Apply changes nothing. (etcd keeps this for up to MaxTxnKeys
//     distinct keys; see "What Apply keeps on a cluster store" below.) Ops run in order, so a later op on the
//     same key wins. A nil Value deletes; a non-nil empty Value is a put.
//     Deleting a missing key is not an error.
//   - Apply returns only when the ops are durable: synced to disk, or
//     committed by the cluster.
//   - Values are copied in and out: a caller may reuse or modify a slice it
//     passed to Apply once Apply returns, and a slice returned by Get or List
//     belongs to the caller. A value that exists is returned as a non-nil
//     slice, so writing back what was read never turns into a delete.
//   - Bucket names are non-empty, contain no '/', and are not MetaBucket,
//     which implementations keep for themselves (the schema version). Keys
//     are non-empty and may contain any byte, '/' included.
//   - Every method is safe for concurrent use. After Close, every method
//     except Close fails with an error wrapping ErrClosed; Close may be
//     called again.
//
// # Cluster stores
//
// Records shared between hosts (global pools and addresses, VNIs, hosts,
// shared networks) need more than Store: several weft instances write them
// at once, with no lock across the network. Cluster adds what
// etcd offers and what flannel and Calico build on, so that weft can do the
// same, and so that the same code runs on one host over bbolt:
//
//   - Revisions. Every write that changes something gets the next store
//     revision; GetItem and ListItems return the revision they read at and
//     each record's mod revision (the revision of its last write). Revisions
//     only grow; nothing else about their values is promised (etcd's are
//     shared by every prefix of the etcd cluster).
//   - Create-only writes. Create fails with ErrExists if the key exists, so
//     of many hosts claiming one address or VNI exactly one wins.
//   - Compare-on-revision writes. Txn writes only if each Cond still holds
//     (the key is at the mod revision read, or absent); otherwise it fails
//     with ErrConflict and writes nothing: read, decide, write, and on
//     ErrConflict read again. Txn and Create are always atomic, and are
//     limited to MaxTxnKeys keys and conditions (ErrInvalid beyond), on every
//     implementation, because etcd cannot do more in one transaction.
//   - Watch. A watch of a bucket from a revision delivers its puts and
//     deletes in revision order, the events of one write together. A store
//     keeps limited history: a watch from a revision that is gone ends with
//     ErrCompacted, and cannot be resumed; re-list, diff against what you
//     had (deletes included), and watch from the listed revision + 1. A
//     watch ends when its context does.
//   - Leases. A put may be bound to a lease (Op.Lease); when the lease
//     expires (KeepAlive stopped renewing it for a TTL) or is revoked, its
//     records are deleted, and watchers see the deletes. A write bound to a
//     lease that is gone fails with ErrNoLease: grant a new one and write
//     again. The local stores' leases live in their process and end, with
//     their records, when the store is closed.
//   - What Apply keeps on a cluster store. Apply is atomic as above when it
//     touches at most MaxTxnKeys distinct keys. etcd cannot commit more
//     keys in one transaction, so store/etcd commits a larger Apply in
//     consecutive atomic parts, in op order (each key's last op wins), and
//     a failure after the first part wraps ErrIncomplete; retrying the Apply
//     completes it. bbolt and the in-memory store keep every Apply atomic.
//
// Values, names and closing behave as for Store. Where each implementation
// gets its revisions, history and leases is in its package documentation.
//
// This package imports the standard library only.
package store
