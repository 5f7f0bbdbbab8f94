package plugin

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestEtcdSettings(t *testing.T) {
	for _, c := range []struct {
		store, ca, cert, key string
		want                 []string
	}{
		{"etcd://127.0.0.1:2379", "", "", "", []string{"http://127.0.0.1:2379"}},
		{"etcd://Etcd1.Example:2379,etcd2:2380,etcd1.example:2379", "", "", "", []string{"http://etcd1.example:2379", "http://etcd2:2380"}},
		{"etcd://[fd00::1]:2379", "/ca.pem", "/c.pem", "/k.pem", []string{"https://[fd00::1]:2379"}},
		{"etcd://unix:///run/etcd/c:2379,https://e:2379/", "", "", "", []string{"unix:///run/etcd/c:2379", "https://e:2379"}},
	} {
		e, err := parseEtcd(c.store, c.ca, c.cert, c.key)
		if err != nil || !slices.Equal(e.Endpoints, c.want) || !e.Enabled() {
			t.Errorf("%q: %v %v, want %v", c.store, e.Endpoints, err, c.want)
		}
	}
	if e, err := parseEtcd("", "", "", ""); err != nil || e.Enabled() {
		t.Errorf("empty store: %+v %v", e, err)
	}
}

func TestEtcdSettingsRefusals(t *testing.T) {
	for _, c := range []struct {
		store, ca, cert, key, want string
	}{
		{"etcd://", "", "", "", "etcd://host:2379"},
		{"etcd:/x:1", "", "", "", "not valid"},
		{"etcd://h", "", "", "", "host:port"},
		{"etcd://h:0", "", "", "", "1 to 65535"},
		{"etcd://h:02379", "", "", "", "1 to 65535"},
		{"etcd://h:2379,", "", "", "", "empty"},
		{"etcd://-h:2379", "", "", "", "DNS name"},
		{"etcd://h h:2379", "", "", "", "spaces"},
		{"etcd://h\n:2379", "", "", "", "control"},
		{"etcd://ftp://h:21", "", "", "", "scheme"},
		{"etcd://http://u:p@h:1", "", "", "", "user"},
		{"etcd://http://h:1/v3", "", "", "", "no path"},
		{"etcd://unix://rel/sock", "", "", "", "absolute"},
		{"etcd://unix:///a/../b", "", "", "", "absolute"},
		{"etcd://[fe80::1%eth0]:1", "", "", "", "zone"},
		{"etcd://h:1", "", "/c.pem", "", "go together"},
		{"etcd://h:1", "ca.pem", "", "", "absolute"},
		{"", "/ca.pem", "", "", "WEFT_STORE does not name one"},
	} {
		_, err := parseEtcd(c.store, c.ca, c.cert, c.key)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q ca=%q cert=%q key=%q: error %v, want it to mention %q", c.store, c.ca, c.cert, c.key, err, c.want)
		}
	}
	// Through ParseSettings too: the variables reach parseEtcd.
	s, err := ParseSettings(nil, envOf(map[string]string{"WEFT_STORE": "etcd://e:2379", "WEFT_ETCD_CA": "/ca"}), io.Discard)
	if err != nil || !slices.Equal(s.Etcd.Endpoints, []string{"https://e:2379"}) || s.Etcd.CAFile != "/ca" {
		t.Errorf("ParseSettings: %+v %v", s.Etcd, err)
	}
}
