// Package ipam is weft's address manager: the pools and addresses behind the
// IpamDriver half of the plugin (`--ipam-driver weft`), on net/netip.
//
// It is pure: no I/O, no logging, no clock, no Docker types, and it imports
// the standard library only. That keeps it unit-testable and fuzzable in
// isolation, and leaves persistence and locking to the plugin, which has to
// own both anyway (it makes each change durable before answering dockerd).
// An Allocator is therefore not safe for concurrent use: the plugin calls it
// under its state mutex.
//
// # Model
//
// A pool is a subnet in one of two address spaces, LocalSpace and GlobalSpace,
// optionally with a Range (--ip-range) that dynamic addresses come from. A
// request without a subnet gets the next free pool cut from the default pools
// (WEFT_DEFAULT_POOLS). Pool IDs are deterministic (space/prefix[/range]), so
// the ID in dockerd's records and in weft's store always denotes the same pool.
//
// # Invariants
//
//   - Pools in one address space never overlap. The same subnet may be held
//     once per space (a swarm manager holds a network's subnet globally, its
//     node holds it locally).
//   - A default pool overlaps no held pool of either space and none of the
//     host routes the caller asks to avoid, and a request for one never
//     returns a pool that is already held: dockerd's retry loop depends on it.
//   - An address is allocated at most once per pool; network and broadcast
//     (IPv4) and subnet-router anycast (IPv6) addresses are never allocated,
//     except in /31, /32, /127 and /128 pools, which have no such addresses.
//   - Dynamic allocation walks the Range round-robin from the pool's Cursor,
//     so a released address is not handed out again while others are free:
//     peers' ARP/NDP caches and connections must not reach a new container.
//   - Every error is written for the person at the docker prompt, who sees it
//     verbatim: it names the pool and address involved and is classified by
//     an exported sentinel for errors.Is.
//
// # Cost
//
// Allocated addresses are kept as a sorted list of runs of consecutive
// addresses with 128-bit arithmetic, not as a bitmap: an IPv6 /64 costs
// nothing up front, and a million sequential allocations are one run. Pools of
// a space are kept sorted, so overlap checks are binary searches, and the
// search for a free default pool jumps over conflicts instead of enumerating
// candidates.
//
// # Persistence
//
// Pools returns the records (Pool is JSON-friendly) and Allocated the
// addresses of each pool; Restore takes them back after a restart, validates
// them, and yields an allocator that answers exactly as the original did.
package ipam
