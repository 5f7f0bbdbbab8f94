package plugin

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSettingsDefaults(t *testing.T) {
	s, err := ParseSettings(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Socket != DefaultSocket || s.StateDir != "/var/lib/weft" || s.Scope != ScopeLocal || s.LogLevel != slog.LevelInfo {
		t.Fatalf("defaults: %+v", s)
	}
	if s.StoreFile() != "/var/lib/weft/weft.db" || len(s.DefaultPools) != 2 {
		t.Fatalf("store file %q, pools %v", s.StoreFile(), s.DefaultPools)
	}
}

func TestSettingsEnvAndFlags(t *testing.T) {
	env := envOf(map[string]string{"LOG_LEVEL": "debug", "WEFT_STATE_DIR": "/srv/weft", "WEFT_DEFAULT_POOLS": "base=10.50.0.0/16,size=24"})
	s, err := ParseSettings([]string{"--state-dir", "/tmp/w", "--socket", "/tmp/w/weft.sock"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.LogLevel != slog.LevelDebug || s.StateDir != "/tmp/w" || s.Socket != "/tmp/w/weft.sock" || len(s.DefaultPools) != 1 {
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
		{nil, map[string]string{"WEFT_STORE": "redis://x"}, "etcd://"},
		{nil, map[string]string{"WEFT_DEFAULT_POOLS": "10.0.0.0/8"}, "WEFT_DEFAULT_POOLS"},
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
