package fw_test

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/weftnet/weft/dataplane/fw"
	"github.com/weftnet/weft/test/nstest"
)

// Docker 29's nftables back-end is recognised from its table alone, read
// through netlink in the namespace weft runs in.
func TestNetnsDockerNftables(t *testing.T) {
	nstest.Setup(t)
	nstest.RequireKernelFeature(t, "nf_tables", func() error {
		_, err := fw.ListNFTables()
		return err
	})
	nft := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("the nft program is needed to plant Docker's table (apt-get install -y nftables): %v", err)
	}

	before := fw.DetectBackend(context.Background())
	if before.DockerFirewall != "" {
		t.Fatalf("a fresh namespace: DockerFirewall %q, want none (%s)", before.DockerFirewall, before)
	}

	// What dockerd --firewall-backend=nftables leaves in a namespace, in
	// short: its tables in both families, no iptables chains.
	nft("add", "table", "ip", fw.DockerNFTable)
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", fw.DockerNFTable).Run() })
	nft("add", "table", "ip6", fw.DockerNFTable)
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip6", fw.DockerNFTable).Run() })
	nft("add", "table", "inet", "someone-else")
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "inet", "someone-else").Run() })

	tables, err := fw.ListNFTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []fw.NFTable{{Family: "ip", Name: fw.DockerNFTable}, {Family: "ip6", Name: fw.DockerNFTable}, {Family: "inet", Name: "someone-else"}} {
		if !slices.Contains(tables, want) {
			t.Errorf("ListNFTables = %v, missing %v", tables, want)
		}
	}

	b := fw.DetectBackend(context.Background())
	if b.DockerFirewall != fw.FirewallNftables || b.Name != fw.BackendNFT || !b.FromDocker {
		t.Errorf("with Docker's nftables table: %s (DockerFirewall %q, FromDocker %v); want nft from Docker, DockerFirewall nftables", b, b.DockerFirewall, b.FromDocker)
	}
	if !strings.Contains(b.Reason, "table ip docker-bridges") {
		t.Errorf("the reason should name Docker's table: %q", b.Reason)
	}
}
