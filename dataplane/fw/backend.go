package fw

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// The two iptables back-ends. Both program the same kernel hooks, but each
// has its own tables: a rule in one does nothing to a verdict the other
// reaches. dockerd's FORWARD policy DROP in the legacy tables drops traffic
// that an ACCEPT in the nft tables let through, so weft must write its rules
// where dockerd writes its own.
const (
	BackendNFT    = "nft"
	BackendLegacy = "legacy"
)

// Backend is the iptables back-end weft uses and why.
type Backend struct {
	// Name is BackendNFT or BackendLegacy; "" when only the plain iptables
	// program exists and its back-end could not be told.
	Name string
	// IPv4 and IPv6 are the programs to run (paths when found, else names);
	// pass them to New with Binaries, or use Option.
	IPv4, IPv6 string
	// Reason says, in one sentence for the log, what the choice rests on.
	Reason string
	// FromDocker is true when the choice follows the tables dockerd itself
	// wrote (its DOCKER* chains). False means a fallback: dockerd has not set
	// up its chains (yet) — at boot a managed plugin starts before dockerd
	// touches iptables — or runs with --iptables=false. A caller may detect
	// again later, before it first writes a rule, to get a firmer answer.
	FromDocker bool
	// DockerFirewall is dockerd's own firewall back-end as seen in the
	// kernel: FirewallIptables (its DOCKER* chains), FirewallNftables (its
	// docker-bridges table, Docker 29 --firewall-backend=nftables), or ""
	// when neither is there (yet).
	DockerFirewall string
}

// dockerd's firewall back-ends (its --firewall-backend values).
const (
	FirewallIptables = "iptables"
	FirewallNftables = "nftables"
)

// Option returns the New option that selects b's programs.
func (b Backend) Option() Option { return Binaries(b.IPv4, b.IPv6) }

func (b Backend) String() string {
	name := b.Name
	if name == "" {
		name = "unknown"
	}
	return fmt.Sprintf("%s (%s, %s): %s", name, b.IPv4, b.IPv6, b.Reason)
}

// Programs DetectBackend looks for.
const (
	progNFTSave    = "iptables-nft-save"
	progLegacySave = "iptables-legacy-save"
)

// Dump is what one iptables-*-save program gave.
type Dump struct {
	// Found is false when the program is not installed.
	Found bool
	// Output is its standard output (all tables, as iptables-save prints).
	Output string
	// Err is set when it ran and failed (e.g. no nf_tables in the kernel).
	Err error
}

func (d Dump) usable() bool { return d.Found && d.Err == nil }

// Probe is everything ChooseBackend decides from.
type Probe struct {
	NFT    Dump // iptables-nft-save
	Legacy Dump // iptables-legacy-save
	// Default is the back-end of the plain "iptables" program, from its
	// --version ("nf_tables" → BackendNFT, otherwise BackendLegacy); "" when
	// it is missing. On the host this is what dockerd itself runs; inside the
	// managed plugin it is the plugin image's choice (nft).
	Default string
	// Paths maps each program name that was found to its path: iptables,
	// ip6tables, iptables-nft, ip6tables-nft, iptables-legacy,
	// ip6tables-legacy.
	Paths map[string]string
	// NFTables are the nftables tables of the namespace (ListNFTables);
	// empty when they could not be listed.
	NFTables []NFTable
}

// tally is what a dump says about who uses that back-end.
type tally struct {
	dockerChains int  // chains named DOCKER or DOCKER-*, in any table
	dockerRules  int  // rules in, or jumping to, a DOCKER* chain
	weftChains   int  // chains named WEFT-*
	rules        int  // rules of any kind
	forwardDrop  bool // filter FORWARD has policy DROP (dockerd sets it)
}

func isDockerChain(name string) bool { return name == "DOCKER" || strings.HasPrefix(name, "DOCKER-") }

// count reads iptables-save output.
func count(out string) tally {
	var t tally
	table := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) == 0 {
				continue
			}
			switch {
			case isDockerChain(f[0]):
				t.dockerChains++
			case strings.HasPrefix(f[0], weftChainPrefix):
				t.weftChains++
			case table == Filter && f[0] == "FORWARD" && len(f) > 1 && f[1] == "DROP":
				t.forwardDrop = true
			}
		case strings.HasPrefix(line, "-A "):
			t.rules++
			f := strings.Fields(line)
			docker := len(f) > 1 && isDockerChain(f[1])
			for i := 2; i+1 < len(f) && !docker; i++ {
				if (f[i] == "-j" || f[i] == "-g") && isDockerChain(f[i+1]) {
					docker = true
				}
			}
			if docker {
				t.dockerRules++
			}
		}
	}
	return t
}

// weftChainPrefix starts the name of every chain weft creates.
const weftChainPrefix = "WEFT-"

// ChooseBackend decides which back-end to use. In order:
//
//  1. Only one of iptables-nft / iptables-legacy installed (or its save
//     program working): that one. Neither: plain iptables and ip6tables.
//  2. dockerd's chains (DOCKER, DOCKER-USER, ...) in exactly one back-end:
//     that one. In both (the host switched back-ends without a reboot): the
//     one with more Docker rules, then the one whose FORWARD policy is DROP,
//     then nft.
//  3. No Docker chains in either, but Docker's nftables table
//     (docker-bridges, Docker 29 --firewall-backend=nftables): nft, so that
//     weft's rules and dockerd's are both nf_tables rules. They coexist:
//     Docker's chains match only its own bridges and accept the rest.
//  4. weft's own chains (WEFT-*) in exactly one: that one, to stay where
//     this weft (before a restart) already wrote.
//  5. Rules in exactly one: that one (another firewall program uses it).
//  6. The back-end of the plain iptables program, else nft.
//
// Only steps 2 and 3 set FromDocker.
func ChooseBackend(p Probe) Backend {
	b := chooseBackend(p)
	n, l := count(p.NFT.Output), count(p.Legacy.Output)
	switch {
	case n.dockerChains > 0 || l.dockerChains > 0:
		b.DockerFirewall = FirewallIptables
	case len(dockerNFTTables(p.NFTables)) > 0:
		b.DockerFirewall = FirewallNftables
	}
	return b
}

func chooseBackend(p Probe) Backend {
	nftOK := p.NFT.usable() && p.Paths["iptables-nft"] != ""
	legacyOK := p.Legacy.usable() && p.Paths["iptables-legacy"] != ""
	switch {
	case !nftOK && !legacyOK:
		b := Backend{Name: p.Default, IPv4: p.path("iptables"), IPv6: p.path("ip6tables")}
		b.Reason = "neither iptables-nft nor iptables-legacy can be used" + p.why() + "; using the plain iptables programs"
		return b
	case !nftOK:
		b := p.backend(BackendLegacy, false, "only the legacy back-end can be used"+p.why())
		if t := dockerNFTTables(p.NFTables); len(t) > 0 {
			b.Reason += fmt.Sprintf(" (dockerd uses nftables, table %s: both sets of rules still apply, as each back-end hooks the same points)", strings.Join(t, ", table "))
		}
		return b
	case !legacyOK:
		return p.backend(BackendNFT, false, "only the nft back-end can be used"+p.why())
	}
	n, l := count(p.NFT.Output), count(p.Legacy.Output)
	switch {
	case n.dockerChains > 0 && l.dockerChains == 0:
		return p.backend(BackendNFT, true, fmt.Sprintf("dockerd's chains are in the nft tables (%d DOCKER* chains; none in the legacy tables)", n.dockerChains))
	case l.dockerChains > 0 && n.dockerChains == 0:
		return p.backend(BackendLegacy, true, fmt.Sprintf("dockerd's chains are in the legacy tables (%d DOCKER* chains; none in the nft tables)", l.dockerChains))
	case n.dockerChains > 0 && l.dockerChains > 0:
		both := fmt.Sprintf("dockerd's chains are in both the nft tables (%d Docker rules) and the legacy tables (%d Docker rules)", n.dockerRules, l.dockerRules)
		switch {
		case l.dockerRules > n.dockerRules:
			return p.backend(BackendLegacy, true, both+"; the legacy tables have more")
		case n.dockerRules > l.dockerRules:
			return p.backend(BackendNFT, true, both+"; the nft tables have more")
		case l.forwardDrop && !n.forwardDrop:
			return p.backend(BackendLegacy, true, both+"; only the legacy FORWARD policy is DROP")
		default:
			return p.backend(BackendNFT, true, both+"; preferring nft")
		}
	case len(dockerNFTTables(p.NFTables)) > 0:
		return p.backend(BackendNFT, true, fmt.Sprintf("dockerd uses its nftables firewall back-end (table %s) and has no iptables chains; weft's iptables rules go in the nft back-end beside it", strings.Join(dockerNFTTables(p.NFTables), ", table ")))
	case n.weftChains > 0 && l.weftChains == 0:
		return p.backend(BackendNFT, false, "no dockerd chains in either back-end yet; weft's own chains are in the nft tables")
	case l.weftChains > 0 && n.weftChains == 0:
		return p.backend(BackendLegacy, false, "no dockerd chains in either back-end yet; weft's own chains are in the legacy tables")
	case n.rules > 0 && l.rules == 0:
		return p.backend(BackendNFT, false, fmt.Sprintf("no dockerd chains in either back-end yet; only the nft tables hold rules (%d)", n.rules))
	case l.rules > 0 && n.rules == 0:
		return p.backend(BackendLegacy, false, fmt.Sprintf("no dockerd chains in either back-end yet; only the legacy tables hold rules (%d)", l.rules))
	case p.Default == BackendLegacy:
		return p.backend(BackendLegacy, false, "no dockerd chains in either back-end yet; the iptables program defaults to legacy")
	case p.Default == BackendNFT:
		return p.backend(BackendNFT, false, "no dockerd chains in either back-end yet; the iptables program defaults to nft")
	default:
		return p.backend(BackendNFT, false, "no dockerd chains in either back-end yet; nft by default")
	}
}

// why says why a back-end cannot be used, for the reason text.
func (p Probe) why() string {
	var parts []string
	for _, d := range []struct {
		name string
		dump Dump
	}{{progNFTSave, p.NFT}, {progLegacySave, p.Legacy}} {
		switch {
		case !d.dump.Found:
			parts = append(parts, d.name+" is not installed")
		case d.dump.Err != nil:
			parts = append(parts, d.name+" failed: "+firstLine(d.dump.Err.Error()))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (p Probe) path(name string) string {
	if v := p.Paths[name]; v != "" {
		return v
	}
	return name
}

// backend names the programs of back-end name. A missing ip6tables-<name>
// stays a bare name, so that opening it fails (and IPv6 is reported
// unavailable) rather than falling back to the other back-end.
func (p Probe) backend(name string, fromDocker bool, reason string) Backend {
	return Backend{
		Name:       name,
		IPv4:       p.path("iptables-" + name),
		IPv6:       p.path("ip6tables-" + name),
		Reason:     reason,
		FromDocker: fromDocker,
	}
}

// Runner runs a program and returns its standard output; the error carries
// its standard error.
type Runner func(ctx context.Context, name string, args ...string) (string, error)

// LookPath finds a program, like exec.LookPath.
type LookPath func(name string) (string, error)

// TableLister lists the namespace's nftables tables, like ListNFTables.
type TableLister func() ([]NFTable, error)

// DetectBackend finds the back-end dockerd uses in the current network
// namespace by reading both back-ends' tables (iptables-nft-save,
// iptables-legacy-save; read-only) and decides with ChooseBackend. It takes
// well under a second; ctx bounds it.
func DetectBackend(ctx context.Context) Backend {
	return DetectBackendWith(ctx, exec.LookPath, runProgram, ListNFTables)
}

// DetectBackendWith is DetectBackend with the program look-up, runner and
// table lister given (tests pass fakes).
func DetectBackendWith(ctx context.Context, look LookPath, run Runner, tables TableLister) Backend {
	return ChooseBackend(ProbeBackends(ctx, look, run, tables))
}

// ProbeBackends gathers what ChooseBackend needs.
func ProbeBackends(ctx context.Context, look LookPath, run Runner, tables TableLister) Probe {
	p := Probe{Paths: map[string]string{}}
	for _, name := range []string{"iptables", "ip6tables", "iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy", progNFTSave, progLegacySave} {
		if path, err := look(name); err == nil {
			p.Paths[name] = path
		}
	}
	dump := func(name string) Dump {
		path := p.Paths[name]
		if path == "" {
			return Dump{}
		}
		out, err := run(ctx, path)
		return Dump{Found: true, Output: out, Err: err}
	}
	if t, err := tables(); err == nil {
		p.NFTables = t
	}
	p.NFT = dump(progNFTSave)
	p.Legacy = dump(progLegacySave)
	if path := p.Paths["iptables"]; path != "" {
		if out, err := run(ctx, path, "--version"); err == nil {
			p.Default = modeOf(out)
		}
	}
	return p
}

// modeOf reads the back-end from "iptables v1.8.9 (nf_tables)" or
// "iptables v1.8.9 (legacy)"; iptables before 1.8 prints no mode and is
// legacy.
func modeOf(version string) string {
	if strings.Contains(version, "nf_tables") {
		return BackendNFT
	}
	if strings.HasPrefix(strings.TrimSpace(version), "iptables v") {
		return BackendLegacy
	}
	return ""
}

// runProgram runs name with a time limit of its own, so that a hung program
// cannot hold up weft's start.
func runProgram(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		} else {
			msg = err.Error() + ": " + msg
		}
		return out.String(), errors.New(name + " " + strings.Join(args, " ") + ": " + msg)
	}
	return out.String(), nil
}
