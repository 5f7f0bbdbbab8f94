//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"
)

// Scenario 9: a refused `docker network create` says what was wrong (the
// option, the subnet) and leaves nothing behind: no weft link, no weft rule,
// no new network, and the pool Docker requested before the refusal is free
// again.
func TestCreateRefused(t *testing.T) {
	h := sharedHost(t)
	// The overlap case needs a network to overlap with.
	h.CreateNetwork(t, "s9-base", "--subnet", "10.93.0.0/24")

	cases := []struct {
		name string
		args []string
		// every string must appear in the error
		want []string
		// one of these must appear too (nil = no extra condition)
		anyOf []string
		// after the refusal, the same create with these args must work
		// (proves the refused attempt released its pool); nil = skip
		retry []string
		// dockerd itself refuses this one before asking weft (so the
		// message does not come from weft)
		byDocker bool
		// dockerd of this version {major, minor} and later refuses this one
		// itself; older ones leave it to weft
		byDockerSince [2]int
		// dockerIPAM: Docker's default IPAM chooses the addresses, so the
		// refusal must come from weft's network driver
		dockerIPAM bool
	}{{
		name:  "unknown option",
		args:  []string{"--subnet", "10.92.0.0/24", "-o", "foo=bar"},
		want:  []string{"foo"},
		retry: []string{"--subnet", "10.92.0.0/24"},
	}, {
		name:  "bad option value",
		args:  []string{"--subnet", "10.92.1.0/24", "-o", "com.docker.network.bridge.enable_icc=maybe"},
		want:  []string{"com.docker.network.bridge.enable_icc", "maybe"},
		retry: []string{"--subnet", "10.92.1.0/24"},
	}, {
		name: "bad mtu",
		args: []string{"--subnet", "10.92.2.0/24", "-o", "com.docker.network.driver.mtu=12"},
		want: []string{"com.docker.network.driver.mtu"},
	}, {
		name: "unknown mode",
		args: []string{"--subnet", "10.92.3.0/24", "-o", "mode=tunnel"},
		want: []string{"mode", "tunnel"},
	}, {
		name:     "prefix too long",
		args:     []string{"--subnet", "10.1.2.3/33"},
		want:     []string{"10.1.2.3/33"},
		byDocker: true,
	}, {
		name: "host bits set",
		args: []string{"--subnet", "10.1.2.3/24"},
		want: []string{"10.1.2.3/24"},
		// Docker 25 validates the IPAM config in the API ("invalid subnet
		// 10.1.2.3/24: it should be 10.1.2.0/24"; moby commit 4f47013feb,
		// api/types/network/ipam.go ValidateIPAM).
		byDockerSince: [2]int{25, 0},
	}, {
		name:  "overlapping subnet",
		args:  []string{"--subnet", "10.93.0.0/16"},
		want:  []string{"overlap"},
		anyOf: []string{"10.93.0.0/16", "10.93.0.0/24"},
	}, {
		name: "bridge name too long",
		args: []string{"--subnet", "10.92.4.0/24", "-o", "com.docker.network.bridge.name=averyverylongbridgename"},
		want: []string{"com.docker.network.bridge.name"},
	}, {
		// An iptables wildcard: the network's rules would match every
		// interface and isolation between all networks would be gone.
		name:  "bridge name iptables wildcard",
		args:  []string{"--subnet", "10.92.5.0/24", "-o", "com.docker.network.bridge.name=br+"},
		want:  []string{"com.docker.network.bridge.name", "'+'"},
		retry: []string{"--subnet", "10.92.5.0/24"},
	}, {
		// A printf verb the kernel would expand, leaving a stray link.
		name: "bridge name format verb",
		args: []string{"--subnet", "10.92.6.0/24", "-o", "com.docker.network.bridge.name=br%d"},
		want: []string{"com.docker.network.bridge.name", "'%'"},
	}, {
		name:  "default-route subnet",
		args:  []string{"--subnet", "0.0.0.0/0"},
		want:  []string{"0.0.0.0/0"},
		retry: []string{"--subnet", "10.92.7.0/24"},
	}, {
		name: "loopback subnet",
		args: []string{"--subnet", "127.0.0.0/24"},
		want: []string{"127.0.0.0/24", "loopback"},
	}, {
		name:       "loopback subnet from Docker's IPAM",
		args:       []string{"--subnet", "127.0.0.0/24"},
		want:       []string{"127.0.0.0/24", "loopback"},
		dockerIPAM: true,
	}, {
		name:       "overlap with a weft bridge, from Docker's IPAM",
		args:       []string{"--subnet", "10.93.0.0/25"},
		want:       []string{"10.93.0.0/25", "overlaps", "10.93.0.0/24"},
		dockerIPAM: true,
	}, {
		// (Docker's own IPAM refuses this one itself; weft's driver refuses
		// it from any other IPAM, see plugin's hostile_test.go.)
		name:  "gateway on the broadcast address",
		args:  []string{"--subnet", "10.92.8.0/24", "--gateway", "10.92.8.255"},
		want:  []string{"10.92.8.255", "broadcast"},
		retry: []string{"--subnet", "10.92.8.0/24"},
	}}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			before := h.Snapshot(t)
			netsBefore := h.NetworkIDs(t)
			args := []string{"network", "create", "-d", h.Driver(), "--ipam-driver", h.Driver()}
			if c.dockerIPAM {
				args = args[:4]
			}
			args = append(args, c.args...)
			out, stderr, err := h.DockerErr(append(args, "s9-bad")...)
			if err == nil {
				h.Docker(t, "network", "rm", "s9-bad")
				t.Fatalf("docker %s succeeded (%s); want an error", strings.Join(args, " "), strings.TrimSpace(out))
			}
			t.Logf("error: %s", stderr)
			// dockerd prefixes a plugin's error with the method it called
			// (protocol.md §1.1).
			fromWeft := strings.Contains(stderr, "NetworkDriver.") || strings.Contains(stderr, "IpamDriver.")
			byDocker := c.byDocker || c.byDockerSince[0] > 0 && engineAtLeast(t, h, c.byDockerSince[0], c.byDockerSince[1])
			if !byDocker && !fromWeft {
				t.Errorf("the error did not come from weft: %s", stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("the error does not mention %q: %s", w, stderr)
				}
			}
			if c.anyOf != nil && !slices.ContainsFunc(c.anyOf, func(s string) bool { return strings.Contains(stderr, s) }) {
				t.Errorf("the error mentions none of %q: %s", c.anyOf, stderr)
			}
			if after := h.NetworkIDs(t); !slices.Equal(after, netsBefore) {
				t.Errorf("docker network ls changed: before %v, after %v", netsBefore, after)
			}
			h.AssertNothingNew(t, before, "the refused create")
			h.WeftAlive(t)
			if c.retry != nil {
				h.CreateNetwork(t, "s9-retry", c.retry...)
				h.Docker(t, "network", "rm", "s9-retry")
			}
		})
	}
}
