// Package nl wraps a netlink handle bound to one network namespace with the
// few idempotent operations weft's modes need.
//
// Every dump-style call (link, address and route lists, and LinkByName, which
// may fall back to a dump) is retried while the kernel reports
// netlink.ErrDumpInterrupted, so callers never act on a partial dump. The
// Ensure* helpers create an object or verify the existing one; Delete* helpers
// treat a missing object as success. Errors are classified with errors.Is on
// syscall errnos and on ErrLinkNotFound, never by comparing strings.
//
// Modes use nl only through a *Handle they were given (see New and NewHost);
// nothing here switches the calling thread's network namespace.
package nl
