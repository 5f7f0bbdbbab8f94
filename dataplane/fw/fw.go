package fw

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Tables is the part of go-iptables' *iptables.IPTables that weft uses, for one
// address family. Implementations: *iptables.IPTables and *Fake.
type Tables interface {
	// Exists reports whether chain in table holds rulespec.
	Exists(table, chain string, rulespec ...string) (bool, error)
	// Append adds rulespec at the end of chain.
	Append(table, chain string, rulespec ...string) error
	// Insert adds rulespec at 1-based position pos of chain.
	Insert(table, chain string, pos int, rulespec ...string) error
	// Delete removes the first copy of rulespec from chain.
	Delete(table, chain string, rulespec ...string) error
	// List returns chain as "iptables -S" prints it: a -P or -N line, then
	// one -A line per rule.
	List(table, chain string) ([]string, error)
	// ChainExists reports whether chain exists in table.
	ChainExists(table, chain string) (bool, error)
	// NewChain creates a user chain; it fails if the chain exists.
	NewChain(table, chain string) error
	// ClearChain flushes chain, creating it if needed.
	ClearChain(table, chain string) error
	// DeleteChain deletes an empty, unreferenced user chain.
	DeleteChain(table, chain string) error
}

var _ Tables = (*iptables.IPTables)(nil)

// Family is an IP address family, selecting iptables or ip6tables.
type Family int

// The families weft programs.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Table names.
const (
	Filter = "filter"
	NAT    = "nat"
)

// TagPrefix starts every weft rule comment.
const TagPrefix = "weft:"

// Tag is the comment that marks a rule as belonging to a network: "weft:" and
// the first 12 characters of the network ID.
func Tag(networkID string) string {
	if len(networkID) > 12 {
		networkID = networkID[:12]
	}
	return TagPrefix + networkID
}

// Comment returns the match that carries tag, to put just before "-j".
func Comment(tag string) []string { return []string{"-m", "comment", "--comment", tag} }

// TagOf returns the network part of a rule's weft tag (the 12 characters after
// "weft:") and true, or "" and false for a rule without a weft tag.
func TagOf(spec []string) (string, bool) {
	for i := 0; i+1 < len(spec); i++ {
		if spec[i] == "--comment" && strings.HasPrefix(spec[i+1], TagPrefix) {
			id := strings.TrimPrefix(spec[i+1], TagPrefix)
			return id, id != ""
		}
	}
	return "", false
}

// Rule is one iptables rule: where it lives and its specification.
type Rule struct {
	Table string
	Chain string
	Spec  []string
}

// String renders r as an iptables command line without the binary, for logs and
// golden files: "-t filter -A CHAIN spec...".
func (r Rule) String() string {
	return "-t " + r.Table + " -A " + r.Chain + " " + Join(r.Spec)
}

// Join renders a spec the way iptables -S does, quoting comments.
func Join(spec []string) string {
	var b strings.Builder
	for i, s := range spec {
		if i > 0 {
			b.WriteByte(' ')
		}
		if (i > 0 && spec[i-1] == "--comment") || s == "" || strings.ContainsAny(s, " \t\"\\'") {
			b.WriteString(quote(s))
		} else {
			b.WriteString(s)
		}
	}
	return b.String()
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// Split tokenises one line of iptables -S output, undoing its quoting.
func Split(line string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (c == ' ' || c == '\t'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// ErrNoChain is wrapped by Rules' error when the chain does not exist.
var ErrNoChain = errors.New("no such chain")

// IsNotExist reports whether err says a chain or rule does not exist: ErrNoChain,
// or an *iptables.Error or Fake error that says so.
func IsNotExist(err error) bool {
	var ne interface{ IsNotExist() bool }
	return errors.Is(err, ErrNoChain) || (errors.As(err, &ne) && ne.IsNotExist())
}

// Firewall applies rules through one Tables per address family. It adds no
// locking of its own: callers serialise changes to the same chains.
type Firewall struct {
	tables map[Family]Tables
	log    *slog.Logger
}

// Option configures New.
type Option func(*config)

type config struct{ v4, v6 string }

// Binaries selects the iptables and ip6tables programs (names looked up in PATH,
// or paths), e.g. "iptables-legacy" and "ip6tables-legacy"; "" keeps the
// default "iptables" / "ip6tables".
func Binaries(v4, v6 string) Option {
	return func(c *config) { c.v4, c.v6 = v4, v6 }
}

// New opens the real iptables (required) and ip6tables, by default the
// "iptables" and "ip6tables" found in PATH (see Binaries to choose the nft or
// legacy back-end). If ip6tables cannot be used, the Firewall has no IPv6
// family (Has(IPv6) is false) and says so in the log; modes then refuse IPv6
// networks. log may be nil.
func New(log *slog.Logger, opts ...Option) (*Firewall, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var c config
	for _, o := range opts {
		o(&c)
	}
	v4, err := Open(IPv4, c.v4)
	if err != nil {
		return nil, err
	}
	v6, err := Open(IPv6, c.v6)
	if err != nil {
		log.Warn("IPv6 firewall unavailable; IPv6 networks will be refused", "err", err)
		return NewWithTables(log, v4, nil), nil
	}
	return NewWithTables(log, v4, v6), nil
}

// Open returns the real Tables for family, running binary ("" = iptables or
// ip6tables from PATH).
func Open(family Family, binary string) (Tables, error) {
	proto := iptables.ProtocolIPv4
	if family == IPv6 {
		proto = iptables.ProtocolIPv6
	}
	// Path("") keeps go-iptables' own choice (iptables or ip6tables from PATH).
	t, err := iptables.New(iptables.IPFamily(proto), iptables.Path(binary))
	if err != nil {
		return nil, fmt.Errorf("opening %s firewall (%s): %w", family, orDefault(binary, family), err)
	}
	return savingTables{IPTables: t, save: saveProgram(binary, family), restore: restoreProgram(binary, family)}, nil
}

func orDefault(binary string, f Family) string {
	if binary != "" {
		return binary
	}
	if f == IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// NewWithTables returns a Firewall over the given Tables; v6 may be nil (no
// IPv6 family). Tests pass Fakes.
func NewWithTables(log *slog.Logger, v4, v6 Tables) *Firewall {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := map[Family]Tables{IPv4: v4}
	if v6 != nil {
		t[IPv6] = v6
	}
	return &Firewall{tables: t, log: log}
}

// Has reports whether the Firewall can program family.
func (f *Firewall) Has(family Family) bool { return f.tables[family] != nil }

func (f *Firewall) t(family Family) (Tables, error) {
	t := f.tables[family]
	if t == nil {
		return nil, fmt.Errorf("no %s firewall available (ip6tables missing?)", family)
	}
	return t, nil
}

// EnsureChain creates chain in table if it does not exist.
func (f *Firewall) EnsureChain(family Family, table, chain string) error {
	t, err := f.t(family)
	if err != nil {
		return err
	}
	ok, err := t.ChainExists(table, chain)
	if err != nil {
		return fmt.Errorf("checking %s chain %s/%s: %w", family, table, chain, err)
	}
	if ok {
		return nil
	}
	if err := t.NewChain(table, chain); err != nil {
		// Someone may have created it in between; only that is fine.
		if ok, cerr := t.ChainExists(table, chain); cerr == nil && ok {
			return nil
		}
		return fmt.Errorf("creating %s chain %s/%s: %w", family, table, chain, err)
	}
	f.log.Debug("created chain", "family", family, "table", table, "chain", chain)
	return nil
}

// DeleteChain flushes and deletes chain; a missing chain is fine. Rules that
// jump to chain must be gone first.
func (f *Firewall) DeleteChain(family Family, table, chain string) error {
	t, err := f.t(family)
	if err != nil {
		return err
	}
	ok, err := t.ChainExists(table, chain)
	if err != nil {
		return fmt.Errorf("checking %s chain %s/%s: %w", family, table, chain, err)
	}
	if !ok {
		return nil
	}
	if err := t.ClearChain(table, chain); err != nil {
		return fmt.Errorf("flushing %s chain %s/%s: %w", family, table, chain, err)
	}
	if err := t.DeleteChain(table, chain); err != nil && !IsNotExist(err) {
		return fmt.Errorf("deleting %s chain %s/%s: %w", family, table, chain, err)
	}
	f.log.Debug("deleted chain", "family", family, "table", table, "chain", chain)
	return nil
}

// EnsureRule appends r to its chain unless the chain already holds it; it
// reports whether it added the rule.
func (f *Firewall) EnsureRule(family Family, r Rule) (added bool, err error) {
	t, err := f.t(family)
	if err != nil {
		return false, err
	}
	ok, err := t.Exists(r.Table, r.Chain, r.Spec...)
	if err != nil {
		return false, fmt.Errorf("checking %s rule %s: %w", family, r, err)
	}
	if ok {
		return false, nil
	}
	if err := t.Append(r.Table, r.Chain, r.Spec...); err != nil {
		return false, fmt.Errorf("adding %s rule %s: %w", family, r, err)
	}
	f.log.Debug("added rule", "family", family, "rule", r.String())
	return true, nil
}

// EnsureInserted inserts r at the top of its chain unless the chain already
// holds it (anywhere); it reports whether it added the rule. It is for rules
// that must precede everything appended later (RETURNs ahead of a chain's
// per-item rules), without moving anyone else's rules.
func (f *Firewall) EnsureInserted(family Family, r Rule) (added bool, err error) {
	t, err := f.t(family)
	if err != nil {
		return false, err
	}
	ok, err := t.Exists(r.Table, r.Chain, r.Spec...)
	if err != nil {
		return false, fmt.Errorf("checking %s rule %s: %w", family, r, err)
	}
	if ok {
		return false, nil
	}
	if err := t.Insert(r.Table, r.Chain, 1, r.Spec...); err != nil {
		return false, fmt.Errorf("inserting %s rule %s: %w", family, r, err)
	}
	f.log.Debug("inserted rule", "family", family, "rule", r.String())
	return true, nil
}

// DeleteRule removes every copy of r; a missing rule or chain is fine.
func (f *Firewall) DeleteRule(family Family, r Rule) error {
	t, err := f.t(family)
	if err != nil {
		return err
	}
	for {
		ok, err := t.Exists(r.Table, r.Chain, r.Spec...)
		if err != nil {
			if IsNotExist(err) {
				return nil
			}
			return fmt.Errorf("checking %s rule %s: %w", family, r, err)
		}
		if !ok {
			return nil
		}
		if err := t.Delete(r.Table, r.Chain, r.Spec...); err != nil {
			if IsNotExist(err) {
				return nil
			}
			return fmt.Errorf("deleting %s rule %s: %w", family, r, err)
		}
		f.log.Debug("deleted rule", "family", family, "rule", r.String())
	}
}

// Rules lists chain's rules as specs (without "-A chain"). A missing chain is
// an error that IsNotExist recognises.
func (f *Firewall) Rules(family Family, table, chain string) ([][]string, error) {
	t, err := f.t(family)
	if err != nil {
		return nil, err
	}
	lines, err := t.List(table, chain)
	if err != nil {
		// iptables-nft does not say "no such chain" in a way go-iptables
		// recognises; ask the exit-status based question instead.
		if ok, cerr := t.ChainExists(table, chain); cerr == nil && !ok {
			return nil, fmt.Errorf("listing %s chain %s/%s: %w", family, table, chain, ErrNoChain)
		}
		return nil, fmt.Errorf("listing %s chain %s/%s: %w", family, table, chain, err)
	}
	var out [][]string
	for _, l := range lines {
		tok := Split(l)
		if len(tok) >= 2 && tok[0] == "-A" && tok[1] == chain {
			out = append(out, tok[2:])
		}
	}
	return out, nil
}

// EnsureFirst makes r the first rule of its chain (a base chain such as
// FORWARD), with no other copy further down. If another program inserted its
// rules above ours, ours is moved back to the top: deleted, then inserted at
// position 1 (deleting by position could remove someone else's rule if the
// chain changed in between).
func (f *Firewall) EnsureFirst(family Family, r Rule) error {
	rules, err := f.Rules(family, r.Table, r.Chain)
	if err != nil {
		return err
	}
	count := 0
	for _, s := range rules {
		if slices.Equal(s, r.Spec) {
			count++
		}
	}
	if count == 1 && slices.Equal(rules[0], r.Spec) {
		return nil
	}
	if count > 0 {
		if err := f.DeleteRule(family, r); err != nil {
			return err
		}
	}
	t, _ := f.t(family)
	if err := t.Insert(r.Table, r.Chain, 1, r.Spec...); err != nil {
		return fmt.Errorf("inserting %s rule %s at position 1: %w", family, r, err)
	}
	f.log.Debug("inserted rule at top", "family", family, "rule", r.String())
	return nil
}

// EnsureSequence makes chain (created if needed) hold exactly specs, in order.
// It is meant for small fixed chains: if the chain differs in any way it is
// flushed and refilled.
func (f *Firewall) EnsureSequence(family Family, table, chain string, specs [][]string) error {
	if err := f.EnsureChain(family, table, chain); err != nil {
		return err
	}
	have, err := f.Rules(family, table, chain)
	if err != nil {
		return err
	}
	if slices.EqualFunc(have, specs, slices.Equal) {
		return nil
	}
	t, _ := f.t(family)
	if err := t.ClearChain(table, chain); err != nil {
		return fmt.Errorf("flushing %s chain %s/%s: %w", family, table, chain, err)
	}
	for _, s := range specs {
		if err := t.Append(table, chain, s...); err != nil {
			return fmt.Errorf("adding %s rule %s: %w", family, Rule{table, chain, s}, err)
		}
	}
	f.log.Debug("rewrote chain", "family", family, "table", table, "chain", chain)
	return nil
}
