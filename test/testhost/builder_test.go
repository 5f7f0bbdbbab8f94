package testhost

import "testing"

func TestKeptPluginDir(t *testing.T) {
	out := "build-plugin: building the root filesystem (docker build --target runtime, version v1)\n" +
		"build-plugin: plugin directory kept: /tmp/tmp.AbC123\nweft-bench/weft-swarm:latest\n"
	if dir, ok := KeptPluginDir(out); !ok || dir != "/tmp/tmp.AbC123" {
		t.Errorf("KeptPluginDir = %q, %v; want /tmp/tmp.AbC123, true", dir, ok)
	}
	if dir, ok := KeptPluginDir("build-plugin: created plugin x (disabled)\n"); ok {
		t.Errorf("KeptPluginDir without the line = %q, true; want false", dir)
	}
}
