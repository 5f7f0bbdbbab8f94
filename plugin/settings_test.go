package plugin

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSettingsDefaults(t *testing.T) {
	s, err := ParseSettings(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Socket != DefaultSocket || s.StateDir != "/var/lib/weft" || s.Scope != ScopeLocal || s.LogLevel != slog.LevelInfo || s.Firewall != FirewallAuto {
		t.Fatalf("defaults: %+v", s)
	}
	if s.StoreFile() != "/var/lib/weft/weft.db" || len(s.DefaultPools) != 2 {
		t.Fatalf("store file %q, pools %v", s.StoreFile(), s.DefaultPools)
	}
}

func TestSettingsEnvAndFlags(t *testing.T) {
	env := envOf(map[string]string{"LOG_LEVEL": "debug", "WEFT_STATE_DIR": "/srv/weft", "WEFT_DEFAULT_POOLS": "base=10.50.0.0/16,size=24", "WEFT_FIREWALL": "fixed"})
	s, err := ParseSettings([]string{"--state-dir", "/tmp/w", "--socket", "/tmp/w/weft.sock", "--firewall", "per-network"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.LogLevel != slog.LevelDebug || s.StateDir != "/tmp/w" || s.Socket != "/tmp/w/weft.sock" || len(s.DefaultPools) != 1 || s.Firewall != FirewallPerNetwork {
		t.Fatalf("flag should win over env, env over default: %+v", s)
	}
}

func TestSettingsRefusals(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{nil, map[string]string{"WEFT_STATE_DIR": "relative"}, "absolute"},
		{[]string{"--socket", "x.sock"}, nil, "absolute"},
		{nil, map[string]string{"WEFT_SCOPE": "galaxy"}, "local or global"},
		{nil, map[string]string{"WEFT_FIREWALL": "nftables"}, "auto, fixed or per-network"},
		{nil, map[string]string{"WEFT_STORE": "redis://x"}, "etcd://"},
		{nil, map[string]string{"WEFT_VXLAN_OFFLOAD": "maybe"}, "auto, on or off"},
		{nil, map[string]string{"WEFT_LEASE_TTL": "1s"}, "2s to 10m"},
		{nil, map[string]string{"WEFT_LEASE_TTL": "soon"}, "2s to 10m"},
		{nil, map[string]string{"WEFT_VTEP_ADDR": "127.0.0.1"}, "WEFT_VTEP_ADDR"},
		{nil, map[string]string{"WEFT_VTEP_ADDR": "host1"}, "WEFT_VTEP_ADDR"},
		{nil, map[string]string{"WEFT_DEFAULT_POOLS": "10.0.0.0/8"}, "WEFT_DEFAULT_POOLS"},
		{nil, map[string]string{"WEFT_SCOPE": "global", "WEFT_STORE": "etcd://10.0.0.1:2379"}, "do not go together"},
		{nil, map[string]string{"WEFT_GOSSIP_KEY": "c2hvcnQ="}, "WEFT_GOSSIP_KEY"},
		{nil, map[string]string{"WEFT_GOSSIP_KEY": "not base64!"}, "WEFT_GOSSIP_KEY"},
		{nil, map[string]string{"WEFT_GOSSIP_PORT": "0"}, "WEFT_GOSSIP_PORT"},
		{nil, map[string]string{"WEFT_GOSSIP_PORT": "70000"}, "WEFT_GOSSIP_PORT"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
	}
	for _, tt := range tests {
		_, err := ParseSettings(tt.args, envOf(tt.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("args %v env %v: error %v, want it to mention %q", tt.args, tt.env, err, tt.want)
		}
	}
}

// A swarm install: global scope, a 32-byte key, the default gossip port.
func TestSettingsGlobalScope(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	s, err := ParseSettings(nil, envOf(map[string]string{"WEFT_SCOPE": "global", "WEFT_GOSSIP_KEY": key}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Scope != ScopeGlobal || len(s.GossipKey) != 32 || s.GossipPort != 7947 {
		t.Fatalf("scope %q, key of %d bytes, port %d; want global, 32, 7947", s.Scope, len(s.GossipKey), s.GossipPort)
	}
	// Swarm networks without --subnet come from pools of their own, apart
	// from a local-scope weft's on the same node, unless the user says.
	if got := fmt.Sprint(s.DefaultPools); got != "[base=10.224.0.0/12,size=24 base=fd5e:f7ee:6000::/40,size=64]" {
		t.Errorf("global scope's default pools %s", got)
	}
	local, err := ParseSettings(nil, envOf(nil), io.Discard)
	if err != nil || fmt.Sprint(local.DefaultPools) != "[base=10.208.0.0/12,size=24 base=fd5e:f7ee:5000::/40,size=64]" {
		t.Errorf("local scope's default pools %v (%v)", local.DefaultPools, err)
	}
	for _, given := range []struct {
		args []string
		env  map[string]string
	}{
		{nil, map[string]string{"WEFT_SCOPE": "global", "WEFT_GOSSIP_KEY": key, "WEFT_DEFAULT_POOLS": "base=10.99.0.0/16,size=24"}},
		{[]string{"--default-pools", "base=10.99.0.0/16,size=24"}, map[string]string{"WEFT_SCOPE": "global", "WEFT_GOSSIP_KEY": key}},
	} {
		s, err := ParseSettings(given.args, envOf(given.env), io.Discard)
		if err != nil || fmt.Sprint(s.DefaultPools) != "[base=10.99.0.0/16,size=24]" {
			t.Errorf("%v %v: default pools %v (%v); want the user's", given.args, given.env, s.DefaultPools, err)
		}
	}
}

// The managed plugin's state: a directory mounted with state.source wins;
// the default mount source (/dev/null, a device) leaves Docker's directory.
func TestResolveStateDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, mount, want, why string
	}{
		{"legacy plugin", "", "/var/lib/weft", "WEFT_STATE_DIR"},
		{"state.source set", dir, dir, "mounted with state.source"},
		{"default /dev/null", "/dev/null", "/var/lib/weft", "state.source is not set"},
		{"a file", file, "/var/lib/weft", "state.source is not set"},
		{"nothing there", filepath.Join(dir, "missing"), "/var/lib/weft", "nothing usable at"},
	} {
		s := Settings{StateDir: "/var/lib/weft", StateMount: c.mount}
		got, why := s.ResolveStateDir(os.Stat)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: ResolveStateDir = %q (%s), want %q (%s)", c.name, got, why, c.want, c.why)
		}
	}
	if _, err := ParseSettings(nil, envOf(map[string]string{"WEFT_STATE_MOUNT": "rel"}), io.Discard); err == nil || !strings.Contains(err.Error(), "WEFT_STATE_MOUNT") {
		t.Errorf("a relative WEFT_STATE_MOUNT: %v", err)
	}
}
