package ipam

import (
	"errors"
	"fmt"
)

// Sentinel errors classify every error the allocator returns; test them with
// errors.Is. The returned error's text is a complete sentence for the person
// at the docker prompt (dockerd shows it verbatim), naming the pool and the
// address involved, so it does not repeat the sentinel's own text.
var (
	// ErrBadRequest: the request itself is malformed (unknown address space,
	// non-canonical or IPv4-mapped subnet, ip-range outside the subnet, …).
	ErrBadRequest = errors.New("invalid IPAM request")
	// ErrPoolOverlap: the pool overlaps a pool already held in the same address space.
	ErrPoolOverlap = errors.New("pool overlaps a pool in use")
	// ErrNoDefaultPool: no default pool of the wanted family is configured, or all are taken.
	ErrNoDefaultPool = errors.New("no default pool available")
	// ErrUnknownPool: the pool ID is not held (never requested, or released).
	ErrUnknownPool = errors.New("unknown pool")
	// ErrNoAddresses: every address the request could get is allocated.
	ErrNoAddresses = errors.New("no free address in pool")
	// ErrAddressInUse: the requested address is already allocated.
	ErrAddressInUse = errors.New("address already in use")
	// ErrAddressOutOfPool: the requested address is not inside the pool.
	ErrAddressOutOfPool = errors.New("address outside pool")
	// ErrReservedAddress: the requested address is the pool's network or
	// broadcast address (IPv4) or its subnet-router anycast address (IPv6).
	ErrReservedAddress = errors.New("address reserved")
	// ErrBadDefaultPools: the default-pools setting does not parse.
	ErrBadDefaultPools = errors.New("invalid default pools setting")
	// ErrBadState: Restore was given records that cannot be the state of an
	// allocator; the error also wraps the specific sentinel (overlap, …).
	ErrBadState = errors.New("inconsistent IPAM state")
)

// ipamError carries a message written for the user plus the sentinels it is
// classified by. fmt.Errorf("…: %w") would append the sentinel's terse text to
// a message that already says everything.
type ipamError struct {
	msg   string
	kinds []error
}

func (e *ipamError) Error() string   { return e.msg }
func (e *ipamError) Unwrap() []error { return e.kinds }

func errorf(kind error, format string, args ...any) error {
	return &ipamError{msg: fmt.Sprintf(format, args...), kinds: []error{kind}}
}

// stateError marks err as found while restoring: it keeps err's classification
// and adds ErrBadState.
func stateError(err error) error {
	return &ipamError{
		msg:   "cannot restore the weft IPAM state: " + err.Error(),
		kinds: []error{ErrBadState, err},
	}
}
