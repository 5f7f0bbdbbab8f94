package fw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-iptables/iptables"
)

// Saver is implemented by Tables that can dump every table at once, as
// iptables-save does: one process (one netlink dump with the nft back-end)
// instead of one per chain. Snapshot uses it when it can.
type Saver interface {
	// Save returns the rules of every table in iptables-save's format.
	Save() (string, error)
}

// savingTables is go-iptables plus the matching iptables-save program.
type savingTables struct {
	*iptables.IPTables
	save, restore string
}

// saveTimeout bounds one iptables-save run: it only reads, and a check that
// hangs must not hold the caller's lock for long.
const saveTimeout = 30 * time.Second

func (t savingTables) Save() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, t.save)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("running %s: %w: %s", t.save, err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// saveProgram is the iptables-save program that goes with an iptables
// program: iptables-legacy → iptables-legacy-save, /usr/sbin/ip6tables →
// /usr/sbin/ip6tables-save.
func saveProgram(binary string, family Family) string {
	return orDefault(binary, family) + "-save"
}

// Snapshot is every chain of one family's tables, as specs (what follows
// "-A CHAIN"), read in one go. A chain that exists with no rules is present
// with a nil slice.
type Snapshot map[string]map[string][][]string

// Has reports whether table holds chain.
func (s Snapshot) Has(table, chain string) bool {
	_, ok := s[table][chain]
	return ok
}

// Contains reports whether chain in table holds spec.
func (s Snapshot) Contains(table, chain string, spec []string) bool {
	return slices.ContainsFunc(s[table][chain], func(r []string) bool { return slices.Equal(r, spec) })
}

// ParseSave reads iptables-save output.
func ParseSave(text string) Snapshot {
	s := Snapshot{}
	table := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line == "COMMIT":
		case line[0] == '*':
			table = line[1:]
			if s[table] == nil {
				s[table] = map[string][][]string{}
			}
		case line[0] == ':' && table != "":
			if name, _, _ := strings.Cut(line[1:], " "); name != "" {
				if _, ok := s[table][name]; !ok {
					s[table][name] = nil
				}
			}
		case strings.HasPrefix(line, "-A ") && table != "":
			tok := Split(line)
			if len(tok) >= 2 {
				s[table][tok[1]] = append(s[table][tok[1]], tok[2:])
			}
		}
	}
	return s
}

// Snapshot reads family's tables in one run of iptables-save, or, for
// Tables that cannot save, chain by chain (the chains named in want, as
// table → chains).
func (f *Firewall) Snapshot(family Family, want map[string][]string) (Snapshot, error) {
	t, err := f.t(family)
	if err != nil {
		return nil, err
	}
	if sv, ok := t.(Saver); ok {
		text, err := sv.Save()
		if err != nil {
			return nil, fmt.Errorf("reading the %s firewall: %w", family, err)
		}
		return ParseSave(text), nil
	}
	s := Snapshot{}
	for table, chains := range want {
		s[table] = map[string][][]string{}
		for _, c := range chains {
			rules, err := f.Rules(family, table, c)
			if IsNotExist(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			s[table][c] = rules
		}
	}
	return s, nil
}

// Restorer is implemented by Tables that can apply a batch of changes in one
// run of iptables-restore --noflush.
type Restorer interface {
	// Restore applies batch (iptables-restore input) without flushing
	// anything else.
	Restore(batch string) error
}

func (t savingTables) Restore(batch string) error {
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, t.restore, "--noflush", "--wait")
	cmd.Stdin = strings.NewReader(batch)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %s --noflush: %w: %s", t.restore, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// restoreProgram is the iptables-restore program that goes with an iptables
// program (see saveProgram).
func restoreProgram(binary string, family Family) string {
	return orDefault(binary, family) + "-restore"
}

// Change is one rule to add at the end of its chain, insert at its top, or
// delete.
type Change struct {
	Rule
	// Top inserts the rule at position 1 instead of appending it.
	Top bool
}

// EnsureRules adds each of rules its chain does not hold yet (appended, or
// inserted at the top with Top) and returns those it added. With real
// iptables that is two processes whatever the number of rules: one
// iptables-save to see what is there and one iptables-restore --noflush
// with what is missing. Other Tables get one check and one change per rule.
// On error, the returned rules are those that may have been added.
func (f *Firewall) EnsureRules(family Family, rules []Change) ([]Change, error) {
	t, err := f.t(family)
	if err != nil {
		return nil, err
	}
	sv, canSave := t.(Saver)
	rs, canRestore := t.(Restorer)
	if !canSave || !canRestore {
		var added []Change
		for _, c := range rules {
			var ok bool
			if c.Top {
				ok, err = f.EnsureInserted(family, c.Rule)
			} else {
				ok, err = f.EnsureRule(family, c.Rule)
			}
			if err != nil {
				return added, err
			}
			if ok {
				added = append(added, c)
			}
		}
		return added, nil
	}
	text, err := sv.Save()
	if err != nil {
		return nil, fmt.Errorf("reading the %s firewall: %w", family, err)
	}
	snap := ParseSave(text)
	var missing []Change
	for _, c := range rules {
		dup := slices.ContainsFunc(missing, func(x Change) bool {
			return x.Table == c.Table && x.Chain == c.Chain && slices.Equal(x.Spec, c.Spec)
		})
		if !dup && !snap.Contains(c.Table, c.Chain, c.Spec) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if err := rs.Restore(batch(missing, false)); err != nil {
		// The legacy back-end commits table by table: some may be in.
		return missing, fmt.Errorf("adding %d %s rules: %w", len(missing), family, err)
	}
	for _, c := range missing {
		f.log.Debug("added rule", "family", family, "rule", c.String())
	}
	return missing, nil
}

// DeleteRules removes every copy of each of rules (missing is fine), in one
// iptables-save and one iptables-restore --noflush with real iptables.
func (f *Firewall) DeleteRules(family Family, rules []Rule) error {
	t, err := f.t(family)
	if err != nil {
		return err
	}
	sv, canSave := t.(Saver)
	rs, canRestore := t.(Restorer)
	if !canSave || !canRestore {
		var errs []error
		for _, r := range rules {
			errs = append(errs, f.DeleteRule(family, r))
		}
		return errors.Join(errs...)
	}
	text, err := sv.Save()
	if err != nil {
		return fmt.Errorf("reading the %s firewall: %w", family, err)
	}
	snap := ParseSave(text)
	var present []Change
	for _, r := range rules {
		for _, have := range snap[r.Table][r.Chain] {
			if slices.Equal(have, r.Spec) {
				present = append(present, Change{Rule: r})
			}
		}
	}
	if len(present) == 0 {
		return nil
	}
	if err := rs.Restore(batch(present, true)); err != nil {
		return fmt.Errorf("deleting %d %s rules: %w", len(present), family, err)
	}
	return nil
}

// batch renders changes as iptables-restore input, table by table: -A (or
// -I CHAIN 1 for Top) lines, or -D lines when del is set.
func batch(changes []Change, del bool) string {
	var b strings.Builder
	var tables []string
	byTable := map[string][]Change{}
	for _, c := range changes {
		if _, ok := byTable[c.Table]; !ok {
			tables = append(tables, c.Table)
		}
		byTable[c.Table] = append(byTable[c.Table], c)
	}
	for _, table := range tables {
		b.WriteString("*" + table + "\n")
		for _, c := range byTable[table] {
			switch {
			case del:
				b.WriteString("-D " + c.Chain)
			case c.Top:
				b.WriteString("-I " + c.Chain + " 1")
			default:
				b.WriteString("-A " + c.Chain)
			}
			b.WriteString(" " + Join(c.Spec) + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
