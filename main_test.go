package main

import (
	"testing"

	"github.com/weftnet/weft/dataplane/vxlan"
	"github.com/weftnet/weft/plugin"
)

// TestVxlanFlavour: a global-scope weft's vxlan mode takes the Swarm names,
// so that it and a local-scope weft on the same node never sweep each
// other's links, sets or rules; a local-scope weft keeps the names it
// always had.
func TestVxlanFlavour(t *testing.T) {
	for scope, want := range map[string]vxlan.Flavour{plugin.ScopeLocal: vxlan.Local(), plugin.ScopeGlobal: vxlan.Swarm()} {
		m := vxlan.New(nil, nil, vxlanOpts(plugin.Settings{Scope: scope}, nil)...)
		if got := m.Flavour(); got != want {
			t.Errorf("WEFT_SCOPE=%s: flavour %s, want %s", scope, got.Instance(), want.Instance())
		}
	}
}
