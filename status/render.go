package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/dataplane/bridge"
	"github.com/weftnet/weft/dataplane/macvlan"
	"github.com/weftnet/weft/dataplane/vxlan"
	"github.com/weftnet/weft/plugin"
)

// AddLinkNames fills in the kernel links of each network and the host
// link of each endpoint. The plugin does not know them (it never imports
// the modes); the names follow from the IDs and options alone.
func AddLinkNames(s *plugin.Status) {
	vx := VxlanFlavour(s)
	mode := map[string]plugin.NetworkStatus{}
	for i, n := range s.Networks {
		switch dataplane.ModeName(n.Mode) {
		case dataplane.Bridge:
			s.Networks[i].Links = []string{n.Bridge}
		case dataplane.Macvlan:
			s.Networks[i].Links = []string{macvlanParent(n)}
		case dataplane.Vxlan:
			s.Networks[i].Links = []string{vx.BridgeName(n.ID), vx.LinkName(n.ID)}
		}
		mode[n.ID] = s.Networks[i]
	}
	for i, e := range s.Endpoints {
		n := mode[e.Network]
		switch dataplane.ModeName(n.Mode) {
		case dataplane.Bridge:
			s.Endpoints[i].HostLink, _ = bridge.VethNames(e.ID)
		case dataplane.Macvlan:
			// The endpoint's own macvlan link is in the container; what
			// stays on the host is its parent.
			s.Endpoints[i].HostLink = macvlanParent(n)
		case dataplane.Vxlan:
			s.Endpoints[i].HostLink, _ = vx.VethNames(e.ID)
		}
	}
}

// VxlanFlavour is the names of s's weft's vxlan links: a global-scope
// weft's are its own (dataplane/vxlan.Swarm).
func VxlanFlavour(s *plugin.Status) vxlan.Flavour {
	if s.Scope == plugin.ScopeGlobal {
		return vxlan.Swarm()
	}
	return vxlan.Local()
}

// macvlanParent is the link a macvlan network's endpoints hang off: its
// parent, or the isolated bridge weft made for a network without one.
func macvlanParent(n plugin.NetworkStatus) string {
	if n.Parent != "" {
		return n.Parent
	}
	return macvlan.IsolatedParentName(n.ID)
}

// WriteJSON prints s as indented JSON (plugin.Status's fields).
func WriteJSON(w io.Writer, s *plugin.Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteTable prints s as tables: networks, endpoints, pools and, with a
// cluster store, its peers. IDs are shortened as the docker CLI does.
func WriteTable(out io.Writer, s *plugin.Status) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	from := "the running weft"
	if s.Source != plugin.SourcePlugin {
		from = "the state file (weft is not running)"
	}
	fmt.Fprintf(w, "read from %s", from)
	if s.HostID != "" {
		fmt.Fprintf(w, "; host %s", s.HostID)
	}
	fmt.Fprintf(w, "\n\n")

	fmt.Fprintf(w, "NETWORK\tMODE\tSUBNETS\tOPTIONS\tLINKS\tENDPOINTS\n")
	for _, n := range s.Networks {
		var subnets []string
		for _, sub := range n.Subnets {
			if sub.Gateway != "" {
				subnets = append(subnets, sub.Pool+" gw "+sub.Gateway)
			} else {
				subnets = append(subnets, sub.Pool)
			}
		}
		eps := strconv.Itoa(n.Endpoints)
		if n.Mode == string(dataplane.Vxlan) && s.Cluster != nil {
			eps += fmt.Sprintf(" (+%d remote)", n.RemoteEndpoints)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", dataplane.ShortID(n.ID), n.Mode, dash(strings.Join(subnets, ", ")),
			dash(options(n)), dash(strings.Join(n.Links, ", ")), eps)
	}
	if len(s.Networks) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}

	fmt.Fprintf(w, "\nENDPOINT\tNETWORK\tIPV4\tIPV6\tMAC\tHOST LINK\n")
	for _, e := range s.Endpoints {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", dataplane.ShortID(e.ID), dataplane.ShortID(e.Network),
			dash(e.IPv4), dash(e.IPv6), dash(e.MAC), dash(e.HostLink))
	}
	if len(s.Endpoints) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}

	fmt.Fprintf(w, "\nPOOL\tSIZE\tALLOCATED\tUSE\tOTHER HOSTS\n")
	for _, p := range s.Pools {
		id := p.ID
		if p.Shared {
			id += " (shared)"
		}
		use := "-"
		if p.Size > 0 {
			use = fmt.Sprintf("%.1f%%", 100*float64(p.Allocated+p.OtherHosts)/p.Size)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\n", id, size(p.Size), p.Allocated, use, p.OtherHosts)
	}
	if len(s.Pools) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}
	if s.Source == plugin.SourcePlugin && s.Reservations > 0 {
		fmt.Fprintf(w, "unclaimed reservations (pools and addresses dockerd reserved that no network or endpoint uses yet): %d\n", s.Reservations)
	}

	if c := s.Cluster; c != nil {
		state := "connected"
		if !c.Connected {
			state = "NOT CONNECTED: " + c.Error
		}
		fmt.Fprintf(w, "\ncluster store: %s, %s\n", c.Store, state)
		fmt.Fprintf(w, "PEER HOST\tVTEP\tENDPOINTS\tLAST SEEN\tPROGRAMMED\n")
		var failed []string
		for _, p := range c.Peers {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", p.Host, p.VTEP, p.Endpoints, lastSeen(s.At, p), programmed(p))
			if p.ProgramError != "" {
				failed = append(failed, p.Host+": "+p.ProgramError)
			}
		}
		for _, f := range failed {
			fmt.Fprintf(w, "programming failed for %s (weft retries at the next change or re-sync; see weft doctor)\n", f)
		}
		if len(c.Peers) == 0 {
			fmt.Fprintf(w, "(no other host publishes vxlan endpoints)\n")
		}
	}
	return w.Flush()
}

// lastSeen says how long before the status was taken weft last read the
// peer's entries from the store.
func lastSeen(at time.Time, p plugin.PeerStatus) string {
	if p.LastSeen.IsZero() || at.IsZero() {
		return "-"
	}
	return max(at.Sub(p.LastSeen), 0).Round(time.Second).String() + " ago"
}

// programmed says whether the peer's entries are in this host's kernel:
// "yes (n/n)", "NO (k/n)", or "none needed" when no network of this host
// has its endpoints' VNIs.
func programmed(p plugin.PeerStatus) string {
	switch {
	case p.LastSeen.IsZero():
		return "-"
	case p.Wanted == 0:
		return "none needed"
	case p.Programmed == p.Wanted && p.ProgramError == "":
		return fmt.Sprintf("yes (%d/%d)", p.Programmed, p.Wanted)
	default:
		return fmt.Sprintf("NO (%d/%d)", p.Programmed, p.Wanted)
	}
}

// options is what sets a network apart beyond its mode and subnets.
func options(n plugin.NetworkStatus) string {
	var o []string
	switch dataplane.ModeName(n.Mode) {
	case dataplane.Macvlan:
		if n.Parent == "" {
			o = append(o, "no parent (isolated)")
		} else {
			o = append(o, "parent "+n.Parent)
		}
		if n.MacvlanMode != "" {
			o = append(o, n.MacvlanMode)
		}
	case dataplane.Vxlan:
		o = append(o, fmt.Sprintf("vni %d", n.VNI))
		if n.Port != 0 {
			o = append(o, fmt.Sprintf("port %d", n.Port))
		}
	}
	if n.MTU != 0 {
		o = append(o, fmt.Sprintf("mtu %d", n.MTU))
	}
	if n.Internal {
		o = append(o, "internal")
	}
	return strings.Join(o, ", ")
}

// size prints a pool size, in powers of two once it is too long to read.
func size(f float64) string {
	if f < 1<<20 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return fmt.Sprintf("2^%.0f", log2(f))
}

func log2(f float64) float64 {
	n := 0.0
	for f >= 2 {
		f /= 2
		n++
	}
	return n
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
