package vxlan

import (
	"regexp"
	"testing"

	"github.com/weftnet/weft/dataplane"
)

// The other modes' sweep patterns (dataplane/bridge/names.go,
// dataplane/macvlan/names.go): no name of this mode may match them, or their
// Reconcile would delete this mode's links.
var otherModes = []*regexp.Regexp{
	regexp.MustCompile(`^w[hc][0-9a-z]{12}$`),
	regexp.MustCompile(`^weft-[0-9a-z]{10}$`),
	regexp.MustCompile(`^wv[0-9a-z]{12}$`),
	regexp.MustCompile(`^wm-[0-9a-z]{10}$`),
}

func TestNames(t *testing.T) {
	const net, ep = "0123456789abcdef0123", "fedcba9876543210fedc"
	host, cont := VethNames(ep)
	for _, tc := range []struct{ got, want string }{
		{BridgeName(net), "wxb-0123456789"},
		{LinkName(net), "wxv-0123456789"},
		{host, "wxhfedcba987654"},
		{cont, "wxcfedcba987654"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
		if err := dataplane.CheckLinkName(tc.got); err != nil {
			t.Errorf("%q: %v", tc.got, err)
		}
		for _, re := range otherModes {
			if re.MatchString(tc.got) {
				t.Errorf("%q matches another mode's pattern %s", tc.got, re)
			}
		}
	}
	if !netLinkName.MatchString(BridgeName(net)) || !netLinkName.MatchString(LinkName(net)) || !vethName.MatchString(host) || !vethName.MatchString(cont) {
		t.Error("this mode's sweep patterns do not match its own names")
	}
	if id, ok := aliasNetwork(ownerAlias(net)); !ok || id != net {
		t.Errorf("aliasNetwork(ownerAlias) = %q, %v", id, ok)
	}
	if _, ok := aliasNetwork(dataplane.OwnerAliasPrefix + net); ok {
		t.Error("the bridge mode's alias is taken for this mode's")
	}
	if p := portOf(dataplane.Network{}); p != 4789 {
		t.Errorf("default port %d", p)
	}
}
