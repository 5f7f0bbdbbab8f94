package fw

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
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
	save string
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
	for _, r := range s[table][chain] {
		if equal(r, spec) {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
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
