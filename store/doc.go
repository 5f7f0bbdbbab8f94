// Package store persists weft's state behind one small key/value interface so
// that the embedded bbolt file (store/bolt, the default) and a cluster store
// (etcd) are interchangeable, and so that the plugin can be unit-tested
// against an in-memory fake (store/memstore).
//
// Why it exists: dockerd replays nothing to a network or IPAM plugin after the
// plugin or dockerd restarts, so what weft does not persist is forgotten. The
// plugin therefore writes every change through Apply and answers dockerd only
// after Apply returns ("durable before acknowledged", DESIGN.md §3).
//
// The contract every implementation keeps (store/storetest checks it):
//
//   - Data is grouped in buckets of string keys. A bucket exists as long as
//     it has keys; reading a bucket that was never written is not an error.
//   - Apply is atomic: a reader sees all of its ops or none of them, and a
//     failed Apply changes nothing. Ops run in order, so a later op on the
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
// This package imports the standard library only.
package store
