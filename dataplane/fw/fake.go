package fw

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Fake is an in-memory Tables for unit tests. It behaves like iptables where
// weft could notice: rules match token by token (so specs must be canonical),
// a jump needs its target chain, a chain cannot be deleted while it has rules
// or is jumped to, List prints comments quoted as iptables -S does, and errors
// about missing chains or rules satisfy IsNotExist. It is safe for concurrent
// use.
type Fake struct {
	mu     sync.Mutex
	tables map[string]*fakeTable
	// Fail, when set, is called before every mutating call (op is "append",
	// "insert", "delete", "newchain", "clearchain" or "deletechain"); a non-nil
	// result is returned instead of performing the call.
	Fail func(op, table, chain string, spec []string) error
	// Mutations counts successful mutating calls.
	Mutations int
}

type fakeTable struct {
	order  []string
	chains map[string]*fakeChain
}

type fakeChain struct {
	builtin bool
	rules   [][]string
}

// fakeError is what the Fake returns; IsNotExist mirrors *iptables.Error.
type fakeError struct {
	msg      string
	notExist bool
}

func (e *fakeError) Error() string    { return "fake iptables: " + e.msg }
func (e *fakeError) IsNotExist() bool { return e.notExist }

var builtinChains = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":    {"PREROUTING", "OUTPUT"},
}

// tableOrder is the order Dump prints tables in.
var tableOrder = []string{"raw", "mangle", "nat", "filter"}

// builtinTargets are targets that are not chains.
var builtinTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "REJECT": true, "MASQUERADE": true,
	"DNAT": true, "SNAT": true, "LOG": true, "MARK": true, "CONNMARK": true, "NOTRACK": true,
	"CT": true, "REDIRECT": true, "TCPMSS": true, "TPROXY": true,
}

// NewFake returns an empty Fake with the built-in chains of the filter, nat,
// mangle and raw tables, all with policy ACCEPT.
func NewFake() *Fake {
	f := &Fake{tables: map[string]*fakeTable{}}
	for t, chains := range builtinChains {
		ft := &fakeTable{chains: map[string]*fakeChain{}}
		for _, c := range chains {
			ft.order = append(ft.order, c)
			ft.chains[c] = &fakeChain{builtin: true}
		}
		f.tables[t] = ft
	}
	return f
}

var _ Tables = (*Fake)(nil)

func (f *Fake) chain(table, chain string) (*fakeTable, *fakeChain, error) {
	t := f.tables[table]
	if t == nil {
		return nil, nil, &fakeError{msg: fmt.Sprintf("table %q does not exist", table), notExist: true}
	}
	c := t.chains[chain]
	if c == nil {
		return t, nil, &fakeError{msg: fmt.Sprintf("No chain/target/match by that name: %s/%s", table, chain), notExist: true}
	}
	return t, c, nil
}

func (f *Fake) fail(op, table, chain string, spec []string) error {
	if f.Fail != nil {
		return f.Fail(op, table, chain, spec)
	}
	return nil
}

// checkTarget refuses a jump to a chain that does not exist.
func (f *Fake) checkTarget(t *fakeTable, spec []string) error {
	for i := 0; i+1 < len(spec); i++ {
		if spec[i] == "-j" || spec[i] == "-g" {
			target := spec[i+1]
			if !builtinTargets[target] && t.chains[target] == nil {
				return &fakeError{msg: fmt.Sprintf("Couldn't load target `%s'", target)}
			}
		}
	}
	return nil
}

func (f *Fake) index(c *fakeChain, spec []string) int {
	return slices.IndexFunc(c.rules, func(r []string) bool { return slices.Equal(r, spec) })
}

// Exists implements Tables. A missing chain means the rule does not exist.
func (f *Fake) Exists(table, chain string, rulespec ...string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, c, err := f.chain(table, chain)
	if err != nil {
		// iptables -C also just answers "no" (exit 1) for a missing chain.
		return false, nil
	}
	return f.index(c, rulespec) >= 0, nil
}

// Append implements Tables.
func (f *Fake) Append(table, chain string, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("append", table, chain, rulespec); err != nil {
		return err
	}
	t, c, err := f.chain(table, chain)
	if err != nil {
		return err
	}
	if err := f.checkTarget(t, rulespec); err != nil {
		return err
	}
	c.rules = append(c.rules, slices.Clone(rulespec))
	f.Mutations++
	return nil
}

// Insert implements Tables.
func (f *Fake) Insert(table, chain string, pos int, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("insert", table, chain, rulespec); err != nil {
		return err
	}
	t, c, err := f.chain(table, chain)
	if err != nil {
		return err
	}
	if pos < 1 || pos > len(c.rules)+1 {
		return &fakeError{msg: "Index of insertion too big."}
	}
	if err := f.checkTarget(t, rulespec); err != nil {
		return err
	}
	c.rules = slices.Insert(c.rules, pos-1, slices.Clone(rulespec))
	f.Mutations++
	return nil
}

// Delete implements Tables.
func (f *Fake) Delete(table, chain string, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("delete", table, chain, rulespec); err != nil {
		return err
	}
	_, c, err := f.chain(table, chain)
	if err != nil {
		return err
	}
	i := f.index(c, rulespec)
	if i < 0 {
		return &fakeError{msg: "Bad rule (does a matching rule exist in that chain?).", notExist: true}
	}
	c.rules = slices.Delete(c.rules, i, i+1)
	f.Mutations++
	return nil
}

// List implements Tables.
func (f *Fake) List(table, chain string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, c, err := f.chain(table, chain)
	if err != nil {
		return nil, err
	}
	return f.listLocked(chain, c), nil
}

func (f *Fake) listLocked(name string, c *fakeChain) []string {
	var out []string
	if c.builtin {
		out = append(out, "-P "+name+" ACCEPT")
	} else {
		out = append(out, "-N "+name)
	}
	for _, r := range c.rules {
		out = append(out, "-A "+name+" "+Join(r))
	}
	return out
}

// ChainExists implements Tables.
func (f *Fake) ChainExists(table, chain string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, c, _ := f.chain(table, chain)
	return c != nil, nil
}

// NewChain implements Tables.
func (f *Fake) NewChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("newchain", table, chain, nil); err != nil {
		return err
	}
	t, c, err := f.chain(table, chain)
	if t == nil {
		return err
	}
	if c != nil {
		return &fakeError{msg: "Chain already exists."}
	}
	t.order = append(t.order, chain)
	t.chains[chain] = &fakeChain{}
	f.Mutations++
	return nil
}

// ClearChain implements Tables.
func (f *Fake) ClearChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("clearchain", table, chain, nil); err != nil {
		return err
	}
	t, c, err := f.chain(table, chain)
	if t == nil {
		return err
	}
	if c == nil {
		t.order = append(t.order, chain)
		t.chains[chain] = &fakeChain{}
	} else {
		c.rules = nil
	}
	f.Mutations++
	return nil
}

// DeleteChain implements Tables.
func (f *Fake) DeleteChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("deletechain", table, chain, nil); err != nil {
		return err
	}
	t, c, err := f.chain(table, chain)
	if err != nil {
		return err
	}
	if c.builtin {
		return &fakeError{msg: "Cannot delete built-in chain."}
	}
	if len(c.rules) > 0 {
		return &fakeError{msg: "Directory not empty."}
	}
	for _, other := range t.chains {
		for _, r := range other.rules {
			if slices.Contains(r, chain) {
				return &fakeError{msg: "Too many links."}
			}
		}
	}
	delete(t.chains, chain)
	t.order = slices.DeleteFunc(t.order, func(s string) bool { return s == chain })
	f.Mutations++
	return nil
}

// SetRules replaces the rules of chain (created if needed) without checks;
// tests use it to plant foreign or stale rules.
func (f *Fake) SetRules(table, chain string, specs ...[]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	c := t.chains[chain]
	if c == nil {
		c = &fakeChain{}
		t.chains[chain] = c
		t.order = append(t.order, chain)
	}
	c.rules = nil
	for _, s := range specs {
		c.rules = append(c.rules, slices.Clone(s))
	}
}

// Dump returns every non-empty table as iptables -S would print it, table by
// table ("*nat" header lines), chains in creation order; built-in chains with
// no rules are left out to keep golden files short.
func (f *Fake) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, name := range tableOrder {
		t := f.tables[name]
		var lines []string
		for _, cn := range t.order {
			c := t.chains[cn]
			if c.builtin && len(c.rules) == 0 {
				continue
			}
			lines = append(lines, f.listLocked(cn, c)...)
		}
		if len(lines) == 0 {
			continue
		}
		b.WriteString("*" + name + "\n")
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
