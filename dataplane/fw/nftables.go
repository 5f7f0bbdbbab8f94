package fw

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	vnl "github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Docker 29's opt-in nftables firewall back-end (dockerd
// --firewall-backend=nftables) writes no iptables rules at all: its rules
// live in nftables tables of its own (moby daemon/libnetwork/internal/nftables,
// table "docker-bridges" in the ip and ip6 families). Its forward chain has
// policy accept and only matches Docker's own bridges, so rules weft writes
// with iptables-nft (tables ip filter / ip nat) coexist with it: every base
// chain on a hook sees each packet, and a DROP in either is final.

// DockerNFTable is the table Docker's nftables back-end keeps its rules in.
const DockerNFTable = "docker-bridges"

// NFTable is one nftables table: its family ("ip", "ip6", "inet", ...) and name.
type NFTable struct {
	Family string
	Name   string
}

func (t NFTable) String() string { return t.Family + " " + t.Name }

// nfFamily names nftables' address families as the nft program does.
func nfFamily(f uint8) string {
	switch f {
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	case unix.NFPROTO_IPV6:
		return "ip6"
	}
	return fmt.Sprintf("family-%d", f)
}

// ListNFTables lists the nftables tables of the current network namespace
// through netlink (read-only; no nft program needed, so it works inside the
// managed plugin's image too). A kernel without nf_tables answers with an
// error, which callers treat as "no tables".
func ListNFTables() ([]NFTable, error) {
	req := vnl.NewNetlinkRequest(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETTABLE, unix.NLM_F_DUMP)
	req.AddData(&vnl.Nfgenmsg{NfgenFamily: unix.NFPROTO_UNSPEC, Version: vnl.NFNETLINK_V0})
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w", err)
	}
	var tables []NFTable
	for _, m := range msgs {
		t, err := parseNFTable(m)
		if err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	return tables, nil
}

// parseNFTable reads one NFT_MSG_NEWTABLE message: an nfgenmsg header, then
// attributes, of which NFTA_TABLE_NAME is the name.
func parseNFTable(m []byte) (NFTable, error) {
	if len(m) < vnl.SizeofNfgenmsg {
		return NFTable{}, errors.New("listing nftables tables: short message from the kernel")
	}
	t := NFTable{Family: nfFamily(m[0])}
	attrs, err := vnl.ParseRouteAttr(m[vnl.SizeofNfgenmsg:])
	if err != nil {
		return NFTable{}, fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, a := range attrs {
		if a.Attr.Type&^unix.NLA_F_NESTED == unix.NFTA_TABLE_NAME {
			t.Name = strings.TrimRight(string(a.Value), "\x00")
		}
	}
	return t, nil
}

// dockerNFTTables lists the tables of Docker's nftables back-end among
// tables ("ip docker-bridges", ...).
func dockerNFTTables(tables []NFTable) []string {
	var found []string
	for _, t := range tables {
		if t.Name == DockerNFTable {
			found = append(found, t.String())
		}
	}
	slices.Sort(found)
	return found
}
