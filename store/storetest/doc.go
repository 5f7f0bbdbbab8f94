// Package storetest is the conformance suite every store.Store
// implementation runs from its own tests, so that the plugin can rely on one
// contract (documented in package store) whichever store is configured:
// bbolt, etcd, or the in-memory fake its unit tests use.
//
// Use Run for a store whose data does not outlive the Store value:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
//
// and Suite with a Reopen hook for a persistent one, which adds the
// persistence checks (everything written is there after Close and a new open):
//
//	storetest.Suite{Open: open, Reopen: reopen}.Run(t)
//
// A store.Cluster runs ClusterSuite instead, which runs Suite on the same
// stores and then the cluster subtests (revisions, create-only races,
// compare-on-revision, watch resume and compaction, lease expiry and
// revocation, large batches, cancelled contexts); its stores must also
// implement Compactor:
//
//	storetest.ClusterSuite{Open: open}.Run(t)
//
// The suite uses only the standard library's testing package.
package storetest
