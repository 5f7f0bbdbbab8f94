package bridge

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/dataplane"
)

// Proxy tests on loopback only: an echo server stands in for the container.

// tcpEcho serves on 127.0.0.1: it writes "hello <client>\n", then echoes
// until EOF and closes.
func tcpEcho(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, "hello "+c.RemoteAddr().String()+"\n")
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// udpEcho answers every datagram with "echo:" + it.
func udpEcho(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func startProxy(t *testing.T, proto dataplane.Proto, target netip.AddrPort) (proxy, netip.AddrPort) {
	t.Helper()
	px, err := listenPort(proto, netip.MustParseAddrPort("127.0.0.1:0"), target, (&net.Dialer{}).DialContext, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	px.start()
	t.Cleanup(func() { _ = px.Close() })
	return px, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), px.boundPort())
}

func TestTCPProxyForwardsAndHalfCloses(t *testing.T) {
	_, addr := startProxy(t, dataplane.TCP, tcpEcho(t))
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "hello 127.0.0.1:") {
		t.Fatalf("greeting %q, %v", line, err)
	}
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	// Half-close: the server sees EOF, echoes what it got and closes.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "ping" {
		t.Fatalf("echo %q, %v", rest, err)
	}
}

func TestTCPProxyCloseEndsConnections(t *testing.T) {
	px, addr := startProxy(t, dataplane.TCP, tcpEcho(t))
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- px.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with a connection open")
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Close")
	}
	// The port is free again.
	ln, err := net.Listen("tcp4", addr.String())
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	_ = ln.Close()
}

func TestTCPProxyUnreachableContainer(t *testing.T) {
	// Nothing listens at the target: the client's connection is closed.
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	dead := netip.MustParseAddrPort(ln.Addr().String())
	_ = ln.Close()
	_, addr := startProxy(t, dataplane.TCP, dead)
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a proxy with no container", n)
	}
}

func TestUDPProxyFlows(t *testing.T) {
	px, addr := startProxy(t, dataplane.UDP, udpEcho(t))
	for _, msg := range []string{"a", "b"} { // two clients, two flows
		c, err := net.Dial("udp4", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		for range 2 {
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "echo:"+msg {
				t.Fatalf("reply %q, %v", buf[:n], err)
			}
		}
	}
	up := px.(*udpProxy)
	up.mu.Lock()
	flows := len(up.flows)
	up.mu.Unlock()
	if flows != 2 {
		t.Fatalf("%d flows, want 2", flows)
	}
}

func TestUDPProxyFlowExpires(t *testing.T) {
	target := udpEcho(t)
	px, err := listenPort(dataplane.UDP, netip.MustParseAddrPort("127.0.0.1:0"), target, (&net.Dialer{}).DialContext, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	px.(*udpProxy).idle = 200 * time.Millisecond
	px.start()
	defer px.Close()
	c, err := net.Dial("udp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), px.boundPort()).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("x"))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		up := px.(*udpProxy)
		up.mu.Lock()
		n := len(up.flows)
		up.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("idle UDP flow never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestListenPortConflicts(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := netip.MustParseAddrPort(ln.Addr().String())
	for _, proto := range []dataplane.Proto{dataplane.TCP} {
		if _, err := listenPort(proto, busy, busy, (&net.Dialer{}).DialContext, quietLog()); !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("listening on a port another socket holds: %v, want EADDRINUSE", err)
		}
	}
}

// TestHoldSCTP: an SCTP port is held by a bound socket where the kernel has
// SCTP, and refused with a clear error where it has not.
func TestHoldSCTP(t *testing.T) {
	px, err := listenPort(dataplane.SCTP, netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("10.1.0.2:9"), nil, quietLog())
	if errors.Is(err, errNoSCTP) {
		if !strings.Contains(err.Error(), "no SCTP support") {
			t.Fatalf("unclear error: %v", err)
		}
		t.Logf("this kernel has no SCTP: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	if px.boundPort() == 0 {
		t.Fatal("no port bound")
	}
	if _, err := listenPort(dataplane.SCTP, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), px.boundPort()), netip.MustParseAddrPort("10.1.0.2:9"), nil, quietLog()); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second hold of the same SCTP port: %v", err)
	}
}
