package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/weftnet/weft/dataplane"
)

// The userland proxy. Every published port has one, listening on the host
// address and port, for two reasons:
//
//   - It holds the port: while weft publishes it, no other program can bind
//     it, and a second request for it fails at once with EADDRINUSE, which
//     Publish turns into a clear error.
//   - It answers where DNAT cannot: connections to a loopback address (the
//     kernel will not route 127.0.0.1 out of a bridge unless route_localnet
//     is set, and a managed plugin cannot write sysctls), connections from
//     containers (WEFT-DNAT returns early for traffic from bridges, which
//     makes hairpin work without hairpin mode), and IPv6 host addresses of an
//     IPv4-only container.
//
// Traffic from other hosts to a non-loopback address never reaches it: it is
// DNAT'd in PREROUTING, so containers see the real client address.

// dialFunc opens a connection to a container; Mode.dial, replaceable for
// tests whose containers live in other namespaces.
type dialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Proxy timeouts.
const (
	proxyDialTimeout = 10 * time.Second
	// udpFlowIdle ends a UDP flow (client address ↔ upstream socket) after
	// this long without traffic either way, as docker-proxy does.
	udpFlowIdle = 90 * time.Second
)

// proxy is one published port's socket and the forwarding behind it.
type proxy interface {
	// start begins forwarding (the socket is held from creation on).
	start()
	// Close stops forwarding, closes the socket and every connection, and
	// waits for the proxy's goroutines to end.
	Close() error
	// boundPort is the host port the socket is bound to (the kernel's choice
	// when it was opened with port 0).
	boundPort() uint16
}

// listenPort opens the host socket of a published port. port 0 picks a free
// ephemeral port (read the chosen one back with boundPort). The socket is
// held but not yet served.
func listenPort(proto dataplane.Proto, host netip.AddrPort, target netip.AddrPort, dial dialFunc, log *slog.Logger) (proxy, error) {
	network := "4"
	if host.Addr().Is6() {
		network = "6"
	}
	ctx, cancel := context.WithCancel(context.Background())
	switch proto {
	case dataplane.TCP:
		// Go sets IPV6_V6ONLY on "tcp6" sockets, so [::]:p and 0.0.0.0:p are
		// two sockets, as the two published ports are two entries.
		ln, err := net.ListenTCP("tcp"+network, net.TCPAddrFromAddrPort(host))
		if err != nil {
			cancel()
			return nil, err
		}
		return &tcpProxy{ln: ln, target: target.String(), dial: dial, log: log, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}, nil
	case dataplane.UDP:
		pc, err := net.ListenUDP("udp"+network, net.UDPAddrFromAddrPort(host))
		if err != nil {
			cancel()
			return nil, err
		}
		p := &udpProxy{pc: pc, target: target.String(), dial: dial, log: log, ctx: ctx, cancel: cancel, idle: udpFlowIdle, flows: map[netip.AddrPort]*udpFlow{}}
		if host.Addr().IsUnspecified() {
			if err := p.recvDestination(); err != nil {
				_ = pc.Close()
				cancel()
				return nil, err
			}
		}
		return p, nil
	case dataplane.SCTP:
		cancel()
		return holdSCTP(host)
	}
	cancel()
	return nil, fmt.Errorf("unknown protocol %q", proto)
}

func (p *tcpProxy) boundPort() uint16 { return netip.MustParseAddrPort(p.ln.Addr().String()).Port() }

func (p *udpProxy) boundPort() uint16 { return p.pc.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

func (h *sctpHold) boundPort() uint16 { return h.port }

// tcpProxy accepts connections on the host port and splices each to the
// container.
type tcpProxy struct {
	ln     *net.TCPListener
	target string
	dial   dialFunc
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func (p *tcpProxy) start() {
	p.wg.Add(1)
	go p.serve()
}

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: back off, do not spin.
			p.log.Warn("userland proxy: accepting a connection failed", "listen", p.ln.Addr().String(), "err", err)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers conns so Close can end them; false if already closed.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *tcpProxy) handle(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		_ = client.Close()
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, proxyDialTimeout)
	up, err := p.dial(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		p.log.Debug("userland proxy: cannot reach the container", "target", p.target, "client", client.RemoteAddr().String(), "err", err)
		p.untrack(client)
		return
	}
	if !p.track(up) {
		_ = up.Close()
		p.untrack(client)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(up, client) }()
	go func() { defer wg.Done(); pipe(client, up) }()
	wg.Wait()
	p.untrack(client, up)
}

// pipe copies src to dst, then half-closes dst so the other side sees EOF
// while the reverse direction may still carry data.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
}

func (p *tcpProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return ignoreClosed(err)
}

// udpProxy relays datagrams between clients of the host port and the
// container: one upstream socket per client address (a "flow"), ended after
// udpFlowIdle without traffic.
type udpProxy struct {
	pc     *net.UDPConn
	target string
	dial   dialFunc
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	idle   time.Duration
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	flows  map[netip.AddrPort]*udpFlow
}

type udpFlow struct {
	up net.Conn
	// oob makes replies leave from the address the client sent to (nil:
	// the socket's own address).
	oob []byte
	mu  sync.Mutex
	at  time.Time // last traffic
}

func (f *udpFlow) touch() {
	f.mu.Lock()
	f.at = time.Now()
	f.mu.Unlock()
}

func (f *udpFlow) idleFor() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Since(f.at)
}

func (p *udpProxy) start() {
	p.wg.Add(1)
	go p.serve()
}

func (p *udpProxy) serve() {
	defer p.wg.Done()
	buf := make([]byte, 65535)
	oob := make([]byte, 128)
	for {
		n, oobn, _, from, err := p.pc.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f := p.flow(from, oob[:oobn])
		if f == nil {
			continue
		}
		f.touch()
		if _, err := f.up.Write(buf[:n]); err != nil {
			p.log.Debug("userland proxy: forwarding a datagram failed", "target", p.target, "err", err)
		}
	}
}

// flow returns from's flow, dialing the container for a new client; nil if
// that fails or the proxy is closed. oob is the first datagram's control
// data (its destination address, on a wildcard socket).
func (p *udpProxy) flow(from netip.AddrPort, oob []byte) *udpFlow {
	p.mu.Lock()
	f, ok := p.flows[from]
	p.mu.Unlock()
	if ok {
		return f
	}
	ctx, cancel := context.WithTimeout(p.ctx, proxyDialTimeout)
	up, err := p.dial(ctx, "udp", p.target)
	cancel()
	if err != nil {
		p.log.Debug("userland proxy: cannot reach the container", "target", p.target, "err", err)
		return nil
	}
	f = &udpFlow{up: up, at: time.Now(), oob: replySource(oob)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = up.Close()
		return nil
	}
	p.flows[from] = f
	p.wg.Add(1)
	go p.replies(from, f)
	return f
}

// replies sends the container's answers back to the client until the flow
// has been idle for p.idle or the proxy closes.
func (p *udpProxy) replies(client netip.AddrPort, f *udpFlow) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		if p.flows[client] == f {
			delete(p.flows, client)
		}
		p.mu.Unlock()
		_ = f.up.Close()
	}()
	buf := make([]byte, 65535)
	for {
		_ = f.up.SetReadDeadline(time.Now().Add(p.idle))
		n, err := f.up.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, net.ErrClosed):
				return
			case errors.As(err, &ne) && ne.Timeout():
				if f.idleFor() >= p.idle {
					return
				}
			}
			// ECONNREFUSED (nothing listens in the container yet) and the
			// like: keep the flow, the client may retry.
			continue
		}
		f.touch()
		if _, _, err := p.pc.WriteMsgUDPAddrPort(buf[:n], f.oob, client); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

func (p *udpProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	err := p.pc.Close()
	for _, f := range p.flows {
		_ = f.up.Close()
	}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return ignoreClosed(err)
}

// A UDP socket bound to all addresses answers from whichever address the
// route to the client picks, which is not always the one the client sent to:
// a container that sent to the host's address would get its answer from the
// bridge's, and drop it. So the wildcard socket learns each datagram's
// destination (IP_PKTINFO / IPV6_RECVPKTINFO) and sends a flow's answers
// from it.

// recvDestination turns on destination reporting on p's socket.
func (p *udpProxy) recvDestination() error {
	raw, err := p.pc.SyscallConn()
	if err != nil {
		return err
	}
	v6 := p.pc.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Is6()
	var serr error
	err = raw.Control(func(fd uintptr) {
		if v6 {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVPKTINFO, 1)
		} else {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("asking for datagram destinations: %w", err)
	}
	return nil
}

// replySource turns a received datagram's control data into the control data
// that sends a reply from the address it was sent to; nil if there is none.
func replySource(oob []byte) []byte {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_PKTINFO && len(m.Data) >= syscall.SizeofInet4Pktinfo:
			var in syscall.Inet4Pktinfo
			copy(in.Addr[:], m.Data[8:12]) // header destination address
			out := syscall.Inet4Pktinfo{Spec_dst: in.Addr}
			return cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, (*[syscall.SizeofInet4Pktinfo]byte)(unsafe.Pointer(&out))[:])
		case m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_PKTINFO && len(m.Data) >= syscall.SizeofInet6Pktinfo:
			var out syscall.Inet6Pktinfo
			copy(out.Addr[:], m.Data[:16])
			return cmsg(syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO, (*[syscall.SizeofInet6Pktinfo]byte)(unsafe.Pointer(&out))[:])
		}
	}
	return nil
}

// cmsg builds one control message.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, syscall.CmsgSpace(len(data)))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(syscall.CmsgLen(len(data)))
	copy(b[syscall.CmsgLen(0):], data)
	return b
}

// sctpHold holds an SCTP port without serving it: Go has no SCTP, so
// published SCTP ports are reachable through DNAT only (not from the host's
// loopback, not from containers). The socket is bound, not listening, so a
// connection that reaches it is refused rather than accepted and left hanging.
type sctpHold struct {
	fd   int
	port uint16
}

func holdSCTP(host netip.AddrPort) (*sctpHold, error) {
	family := syscall.AF_INET
	if host.Addr().Is6() {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_SCTP)
	if err != nil {
		if errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.ESOCKTNOSUPPORT) {
			return nil, errNoSCTP
		}
		return nil, sctpErr(host, "socket", err)
	}
	var sa syscall.Sockaddr
	if family == syscall.AF_INET6 {
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1); err != nil {
			_ = syscall.Close(fd)
			return nil, sctpErr(host, "setsockopt", err)
		}
		sa = &syscall.SockaddrInet6{Port: int(host.Port()), Addr: host.Addr().As16()}
	} else {
		sa = &syscall.SockaddrInet4{Port: int(host.Port()), Addr: host.Addr().As4()}
	}
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, sctpErr(host, "bind", err)
	}
	got, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, sctpErr(host, "getsockname", err)
	}
	h := &sctpHold{fd: fd}
	switch a := got.(type) {
	case *syscall.SockaddrInet4:
		h.port = uint16(a.Port)
	case *syscall.SockaddrInet6:
		h.port = uint16(a.Port)
	}
	return h, nil
}

// errNoSCTP says the kernel cannot make SCTP sockets.
var errNoSCTP = errors.New("this host's kernel has no SCTP support (the sctp module is not loaded), so SCTP ports cannot be published")

// sctpErr reads like Go's own listen errors: "listen sctp 0.0.0.0:80: bind:
// address already in use"; errors.Is sees the errno.
func sctpErr(host netip.AddrPort, call string, err error) error {
	return &net.OpError{Op: "listen", Net: "sctp", Addr: sctpAddr(host), Err: os.NewSyscallError(call, err)}
}

// sctpAddr is a net.Addr for error messages.
type sctpAddr netip.AddrPort

func (a sctpAddr) Network() string { return "sctp" }
func (a sctpAddr) String() string  { return netip.AddrPort(a).String() }

func (h *sctpHold) start() {}

func (h *sctpHold) Close() error { return syscall.Close(h.fd) }

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
