package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// DefaultPoolsSetting is the default of WEFT_DEFAULT_POOLS: a /12 of IPv4 cut
// into /24s and a /40 of ULA IPv6 cut into /64s. The IPv4 base stays clear of
// Docker's own default pools (172.17.0.0/16–172.31.0.0/16, 192.168.0.0/16), so
// weft and the built-in bridge driver can run side by side.
const DefaultPoolsSetting = "base=10.208.0.0/12,size=24;base=fd5e:f7ee:5000::/40,size=64"

// GlobalDefaultPoolsSetting is the default of WEFT_DEFAULT_POOLS on a
// global-scope weft (swarm networks): the next /12 and /40, so that a swarm
// network without --subnet never gets the subnet a local-scope weft on the
// same node picked for one of its networks (the two keep separate state, as
// Docker keeps its overlay pools, 10.0.0.0/8, apart from its bridge pools).
const GlobalDefaultPoolsSetting = "base=10.224.0.0/12,size=24;base=fd5e:f7ee:6000::/40,size=64"

// defaultPoolsSyntax is shown with every parse error.
const defaultPoolsSyntax = `the syntax is "base=CIDR,size=N", entries separated by ";", e.g. "` + DefaultPoolsSetting + `"`

// DefaultPool is one entry of the default-pools setting: Base is cut into
// pools of prefix length Size, handed out when a network has no --subnet.
type DefaultPool struct {
	Base netip.Prefix
	Size int
}

// String gives the entry in the setting's syntax.
func (d DefaultPool) String() string { return fmt.Sprintf("base=%s,size=%d", d.Base, d.Size) }

// maxDefaultSize is the longest default pool prefix: /30 (IPv4) and /126
// (IPv6) still leave room for a gateway and a container.
func maxDefaultSize(v6 bool) int {
	if v6 {
		return 126
	}
	return 30
}

// check validates an entry; the message does not name the entry (the caller does).
func (d DefaultPool) check() error {
	if err := checkPrefix("base", d.Base); err != nil {
		return err
	}
	if maxSize := maxDefaultSize(d.Base.Addr().Is6()); d.Size < d.Base.Bits() || d.Size > maxSize {
		return fmt.Errorf("size %d must lie between the base's prefix length %d and %d", d.Size, d.Base.Bits(), maxSize)
	}
	return nil
}

// ParseDefaultPools parses the WEFT_DEFAULT_POOLS syntax, which is Docker's
// --default-address-pool syntax with entries separated by ';':
// "base=CIDR,size=N;base=CIDR,size=N". Blank entries are ignored, so an empty
// setting yields no default pools (every network then needs --subnet).
// Errors name the bad entry and show the syntax.
func ParseDefaultPools(s string) ([]DefaultPool, error) {
	pools := []DefaultPool{}
	for i, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		d, err := parseDefaultPool(entry)
		if err != nil {
			return nil, errorf(ErrBadDefaultPools, "default pool entry %d %q: %v; %s", i+1, entry, err, defaultPoolsSyntax)
		}
		pools = append(pools, d)
	}
	return pools, nil
}

func parseDefaultPool(entry string) (DefaultPool, error) {
	var d DefaultPool
	var haveBase, haveSize bool
	for kv := range strings.SplitSeq(entry, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return d, fmt.Errorf("%q is not key=value", strings.TrimSpace(kv))
		}
		switch k {
		case "base":
			if haveBase {
				return d, fmt.Errorf("base is given twice")
			}
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return d, fmt.Errorf("base %q is not a subnet in CIDR notation", v)
			}
			d.Base, haveBase = p, true
		case "size":
			if haveSize {
				return d, fmt.Errorf("size is given twice")
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return d, fmt.Errorf("size %q is not a number", v)
			}
			d.Size, haveSize = n, true
		default:
			return d, fmt.Errorf("unknown key %q (only base and size are known)", k)
		}
	}
	if !haveBase || !haveSize {
		return d, fmt.Errorf("both base and size are needed")
	}
	return d, d.check()
}

// nextDefault finds the lowest free pool among the default pools of the
// family: inside a base, aligned to its size, overlapping no held pool and no
// avoided route. Held pools of both address spaces are avoided, so that a
// default pool never duplicates a subnet already routed on this host.
//
// It never enumerates candidates one by one (a /40 cut into /64s has 2^24):
// on a conflict it jumps to the first aligned candidate after the conflicting
// pool or route, so the cost is bounded by the number of conflicts.
func (a *Allocator) nextDefault(v6 bool, avoid []netip.Prefix) (netip.Prefix, error) {
	// Special-purpose ranges are skipped like host routes, so a base that
	// covers one (0.0.0.0/1, say) still yields pools RequestPool accepts.
	for _, r := range specialRanges() {
		avoid = append(avoid[:len(avoid):len(avoid)], r.prefix)
	}
	avoided := mergeRoutes(avoid, v6)
	conflict := func(lo, hi u128) (end u128, found bool) {
		for _, space := range []string{LocalSpace, GlobalSpace} {
			if p := a.index[spaceKey{space, v6}].overlapping(lo, hi); p != nil {
				return p.last, true
			}
		}
		if i := searchRuns(avoided, lo); i < len(avoided) && !hi.less(avoided[i].lo) {
			return avoided[i].hi, true
		}
		return u128{}, false
	}

	var bases []string
	for _, d := range a.defaults {
		if d.Base.Addr().Is6() != v6 {
			continue
		}
		bases = append(bases, d.Base.String()+" as /"+strconv.Itoa(d.Size)+"s")
		base0, base1 := bounds(d.Base)
		mask := hostMask(d.Base.Addr().BitLen() - d.Size)
		for lo := base0; ; {
			hi := lo.or(mask)
			end, found := conflict(lo, hi)
			if !found {
				return netip.PrefixFrom(lo.addr(v6), d.Size), nil
			}
			if !end.less(base1) {
				break
			}
			after, _ := end.addOne() // end < base1: no overflow
			next, ok := alignUp(after, mask)
			if !ok || base1.less(next) {
				break
			}
			lo = next
		}
	}

	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	if len(bases) == 0 {
		return netip.Prefix{}, errorf(ErrNoDefaultPool,
			"no default %s pool is configured (WEFT_DEFAULT_POOLS has no %s base); give the network an %s --subnet",
			family, family, family)
	}
	return netip.Prefix{}, errorf(ErrNoDefaultPool,
		"every default %s pool (%s) is in use or overlaps a host route; give the network a --subnet or widen WEFT_DEFAULT_POOLS",
		family, strings.Join(bases, ", "))
}

// mergeRoutes turns the routes of one family into sorted, disjoint runs.
// A zero-length route (a default route) is ignored: Avoid is meant for the
// host's on-link routes, and a default route would rule out every pool.
func mergeRoutes(routes []netip.Prefix, v6 bool) []run {
	var rs []run
	for _, r := range routes {
		if !r.IsValid() {
			continue
		}
		// Masked first: a mapped address with fewer than 96 bits masks to
		// a plain IPv6 route; one with 96 or more is an IPv4 route.
		r = r.Masked()
		if r.Addr().Is4In6() {
			r = netip.PrefixFrom(r.Addr().Unmap(), r.Bits()-96)
		}
		if r.Bits() == 0 || r.Addr().Is6() != v6 {
			continue
		}
		lo, hi := bounds(r)
		rs = append(rs, run{lo, hi})
	}
	slices.SortFunc(rs, func(x, y run) int { return x.lo.cmp(y.lo) })
	merged := rs[:0]
	for _, r := range rs {
		if n := len(merged); n > 0 && !merged[n-1].hi.less(r.lo) {
			if merged[n-1].hi.less(r.hi) {
				merged[n-1].hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// searchRuns returns the index of the first run that ends at or after x.
func searchRuns(rs []run, x u128) int {
	s := addrSet{runs: rs}
	return s.search(x)
}
