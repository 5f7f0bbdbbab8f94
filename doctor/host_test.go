package doctor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/plugin"
)

// UDPPort finds a socket this test binds, held by this process.
func TestUDPPortFindsTheProgram(t *testing.T) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	hs, err := HostEnv(statusOptionsForTest()).UDPPort(port)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].PID != os.Getpid() || hs[0].Program == "" {
		t.Fatalf("UDPPort(%d) = %+v, want this process (%d)", port, hs, os.Getpid())
	}
}

// ClusterClock reads the Date header of an HTTP server's /version.
func TestClusterClockReadsDate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
		_, _ = w.Write([]byte(`{"etcdserver":"3.5.0"}`))
	}))
	defer srv.Close()
	c, err := HostEnv(statusOptionsForTest()).ClusterClock(context.Background(), plugin.EtcdSettings{Endpoints: []string{"http://127.0.0.1:1", srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint != srv.URL || c.Skew() > -59*time.Minute || c.Skew() < -61*time.Minute {
		t.Fatalf("%+v: skew %s, want about -1h from %s", c, c.Skew(), srv.URL)
	}
	_, err = HostEnv(statusOptionsForTest()).ClusterClock(context.Background(), plugin.EtcdSettings{Endpoints: []string{"http://127.0.0.1:1"}})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable: %v", err)
	}
}
