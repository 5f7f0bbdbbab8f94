// Package memstore is an in-memory store.Store for the unit tests of other
// packages (plugin, vxlan control plane): fast, no files, and able to fail on
// demand so that a test can check what weft does when a write to its state
// store fails (it must undo its work and tell the docker user).
//
// It keeps the whole store.Store and store.Cluster contracts except
// durability: values are copied in and out, Apply is atomic, revisions,
// conditional writes, watches and leases behave as etcd's, and it passes
// store/storetest. Tests need not wait for the clock: Compact drops watch
// history (a watch from before then gets store.ErrCompacted) and
// ExpireLease ends a lease as if its TTL had passed.
//
// Fault injection: FailNext makes the next write (Apply, Txn, Create) fail,
// FailWhen decides per write from its ops; Applies counts the Applies that
// succeeded.
//
// Never use it outside tests: everything is lost when the process exits.
package memstore
