// Package fw keeps weft's iptables rules as data and applies them with
// idempotent operations: ensure a chain, ensure a rule (append if missing),
// delete a rule (every copy; missing is fine), keep a jump at the top of a base
// chain, keep a small chain exactly equal to a fixed sequence, and list a
// chain's rules back as data.
//
// The kernel side is reached only through Tables, the handful of
// github.com/coreos/go-iptables methods weft calls, so modes can be unit-tested
// against Fake, an in-memory implementation with iptables' rules (a jump needs
// its target chain, a referenced or non-empty chain cannot be deleted, ...).
// New opens the real iptables and ip6tables binaries the caller names, so the
// back-end (nft or legacy) is the caller's choice.
//
// Ownership: every weft chain is named WEFT-*, and every per-network rule
// carries the comment "weft:<first 12 characters of the network ID>" (Tag),
// which reconciliation reads back (TagOf) to find rules of networks weft no
// longer knows. Rules without a weft tag are never deleted by a sweep.
//
// Specs must be written in the canonical form iptables -S prints (addresses and
// interfaces first, then matches in order, "-j" last, "!" before the option it
// negates), because rules read back from the kernel are compared with the
// generated ones token by token.
package fw
