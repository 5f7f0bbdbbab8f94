// Package plugin is weft's Docker-facing side: it serves the NetworkDriver and
// IpamDriver protocols on one HTTP mux, turns Docker's loosely typed requests
// into validated dataplane values, and orchestrates IPAM, the store and the
// kernel modes with rollback on failure.
//
// Invariants kept here:
//   - one mutex serialises all state changes; every change is written to the
//     store before the request is answered;
//   - requests wait until the state has been loaded and reconciled at start;
//   - create calls are idempotent for a known ID, delete calls for an unknown ID
//     succeed;
//   - nothing here calls the Docker API, imports netlink or runs iptables.
package plugin
