// Package memstore is an in-memory store.Store for the unit tests of other
// packages (plugin, vxlan control plane): fast, no files, and able to fail on
// demand so that a test can check what weft does when a write to its state
// store fails (it must undo its work and tell the docker user).
//
// It keeps the whole store.Store contract except durability: values are
// copied in and out, Apply is atomic, and it passes store/storetest.
// Fault injection: FailNext makes the next Apply fail, FailWhen decides per
// Apply from its ops; Applies counts the Applies that succeeded.
//
// Never use it outside tests: everything is lost when the process exits.
package memstore
