package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
)

// MaxRequestBytes bounds a request body; dockerd's largest (CreateEndpoint
// with a long port map) is a few KiB.
const MaxRequestBytes = 1 << 20

// maxHeaderBytes bounds a request's headers; dockerd sends five short ones.
const maxHeaderBytes = 64 << 10

// maxErrorBytes bounds an error message on the wire. dockerd prints it at
// the docker prompt; weft's own messages are a line or two, and an input
// echoed in full (a 1 MiB option value) would bury them.
const maxErrorBytes = 1024

// maxLogPathBytes bounds a request path in the log.
const maxLogPathBytes = 256

// manifest answers /Plugin.Activate: both APIs on this one socket.
const manifest = `{"Implements":["NetworkDriver","IpamDriver"]}`

// errorResponse carries errors in the field each API reads: NetworkDriver
// clients read "Err", IpamDriver clients "Error"; a non-200 status makes
// both treat it as a failure.
type errorResponse struct {
	Err   string
	Error string
}

// Defaults of ServerOptions.
const (
	// DefaultReadHeaderTimeout: dockerd writes a request in one go, so its
	// headers arrive at once; a client still sending them after this is
	// stuck or hostile.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds the whole request, headers and body (at most
	// MaxRequestBytes), with room for a host under heavy load.
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection nobody uses. It is
	// long because dockerd's plugin client never closes idle connections
	// itself: each close by weft races with a request dockerd may be about
	// to send on that connection (dockerd retries such a call, but it is
	// better not to make it).
	DefaultIdleTimeout = 2 * time.Minute
)

// ServerOptions are the time bounds of the plugin's HTTP server; a zero field
// takes its default. Tests shorten them.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, from its
	// first byte.
	ReadTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration
	// Observer, if not nil, is told of every answered request (metrics).
	Observer Observer
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	return o
}

// NewServer returns the plugin's HTTP server over NewHandler(d, log).
//
// A slow or stalled client holds nothing but its own connection: every
// handler reads its whole body before it touches the driver, and ReadTimeout
// bounds that read. There is deliberately no WriteTimeout: in net/http it
// runs from the end of the request's headers to the end of the answer, so it
// would cut off legitimate calls that take long (a DeleteNetwork removing
// many endpoints, any call queued behind one), and an answer is a few
// hundred bytes that a unix socket takes at once. ReadTimeout does not cut
// such calls either: net/http lifts the read deadline once the body has been
// read to its end, which every handler does first.
func NewServer(d *Driver, log *slog.Logger, opts ServerOptions) *http.Server {
	opts = opts.withDefaults()
	return &http.Server{
		Handler:           newHandler(d, log, opts.Observer),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Listen creates the plugin's unix socket at path, readable and writable by
// weft's user (root) only, from the moment a client can reach it. It refuses
// to start when another process serves path, and replaces a stale socket a
// dead weft left; it never removes anything but a socket.
//
// The socket is bound inside a new private directory (mode 0700), made
// owner-only there, and only then hard-linked to path. Until the link exists
// no other user can reach the socket (connecting needs search permission on
// every directory of its path), and the link shows it with its final mode.
// Two other ways were rejected: Chmod after Listen leaves a window in which
// the socket has the mode the umask gives it (0777 under umask 0: anyone may
// connect); and setting the umask around Listen changes it for the whole
// process, so a file another goroutine creates meanwhile would get it too. A link, unlike a rename, fails if path
// has appeared since the stale socket was removed (another weft starting at
// the same moment), instead of silently taking it over.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the socket's directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("another process is already serving %s; stop it or choose another --socket", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another --socket", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}

	// Next to path, so that the link stays on one file system; short names,
	// because a socket path may not exceed 107 bytes.
	private, err := os.MkdirTemp(dir, ".weft")
	if err != nil {
		return nil, fmt.Errorf("creating a private directory for the socket: %w", err)
	}
	defer func() { _ = os.RemoveAll(private) }()
	tmp := filepath.Join(private, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("creating the socket (next to %s): %w", path, err)
	}
	// Closing the listener must not remove tmp's name: it is gone by then,
	// and path is removed by whoever stops weft.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("making the socket owner-only: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		_ = l.Close()
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("another process created %s while weft was starting; stop it or choose another --socket", path)
		}
		return nil, fmt.Errorf("putting the socket in place at %s: %w", path, err)
	}
	return &placedListener{Listener: l, addr: &net.UnixAddr{Name: path, Net: "unix"}}, nil
}

// placedListener reports the path the socket was linked to, not the private
// one it was bound at (which no longer exists).
type placedListener struct {
	net.Listener
	addr net.Addr
}

func (l *placedListener) Addr() net.Addr { return l.addr }

// router maps each path weft serves to its handler; every route is a POST.
// An exact map, not an http.ServeMux: the mux answers some requests itself
// (redirects for unclean paths, plain-text 405s), and every answer must be
// one a plugin client can read.
type router struct {
	// maxBody bounds a request body: MaxRequestBytes, but the fuzz tests use
	// a smaller bound, so that an oversized body is a few mutations away.
	maxBody int64
	routes  map[string]http.HandlerFunc
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := rt.routes[r.URL.Path]
	if !ok || r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, fmt.Errorf("weft does not implement %s %s", r.Method, r.URL.Path))
		return
	}
	h(w, r)
}

// NewHandler serves every route of both APIs from d. go-plugins-helpers gives
// each API its own mux and Activate manifest, so the routes are composed here
// from its request/response types (protocol.md §1.3).
func NewHandler(d *Driver, log *slog.Logger) http.Handler {
	return newHandler(d, log, nil)
}

// newHandler is NewHandler that also tells obs (if not nil) of each request.
func newHandler(d *Driver, log *slog.Logger, obs Observer) http.Handler {
	if obs == nil {
		obs = noObserver{}
	}
	return observeRequests(log, obs, newRouter(d, MaxRequestBytes))
}

// newRouter returns every route of both APIs, and weft's own read-only
// StatePath, StatusPath (weft status) and CheckPath (weft doctor),
// taking bodies of at most maxBody bytes.
func newRouter(d *Driver, maxBody int64) *router {
	rt := &router{maxBody: maxBody, routes: map[string]http.HandlerFunc{}}
	noBody(rt, "/Plugin.Activate", func(context.Context) (any, error) { return json.RawMessage(manifest), nil })
	nd := "/NetworkDriver."
	noBody(rt, nd+"GetCapabilities", func(context.Context) (any, error) { return d.Capabilities(), nil })
	route(rt, nd+"CreateNetwork", func(ctx context.Context, r *network.CreateNetworkRequest) (any, error) {
		return struct{}{}, d.CreateNetwork(ctx, r)
	})
	route(rt, nd+"DeleteNetwork", func(ctx context.Context, r *network.DeleteNetworkRequest) (any, error) {
		return struct{}{}, d.DeleteNetwork(ctx, r)
	})
	route(rt, nd+"AllocateNetwork", func(ctx context.Context, r *network.AllocateNetworkRequest) (any, error) {
		return d.AllocateNetwork(ctx, r)
	})
	route(rt, nd+"FreeNetwork", func(ctx context.Context, r *network.FreeNetworkRequest) (any, error) {
		return struct{}{}, d.FreeNetwork(ctx, r)
	})
	route(rt, nd+"CreateEndpoint", func(ctx context.Context, r *network.CreateEndpointRequest) (any, error) {
		return d.CreateEndpoint(ctx, r)
	})
	route(rt, nd+"EndpointOperInfo", func(ctx context.Context, r *network.InfoRequest) (any, error) {
		return d.EndpointInfo(ctx, r)
	})
	route(rt, nd+"DeleteEndpoint", func(ctx context.Context, r *network.DeleteEndpointRequest) (any, error) {
		return struct{}{}, d.DeleteEndpoint(ctx, r)
	})
	route(rt, nd+"Join", func(ctx context.Context, r *network.JoinRequest) (any, error) {
		return d.Join(ctx, r)
	})
	route(rt, nd+"Leave", func(ctx context.Context, r *network.LeaveRequest) (any, error) {
		return struct{}{}, d.Leave(ctx, r)
	})
	route(rt, nd+"DiscoverNew", func(ctx context.Context, r *network.DiscoveryNotification) (any, error) {
		return struct{}{}, d.DiscoverNew(ctx, r)
	})
	route(rt, nd+"DiscoverDelete", func(ctx context.Context, r *network.DiscoveryNotification) (any, error) {
		return struct{}{}, d.DiscoverDelete(ctx, r)
	})
	route(rt, nd+"ProgramExternalConnectivity", func(ctx context.Context, r *network.ProgramExternalConnectivityRequest) (any, error) {
		return struct{}{}, d.ProgramExternalConnectivity(ctx, r)
	})
	route(rt, nd+"RevokeExternalConnectivity", func(ctx context.Context, r *network.RevokeExternalConnectivityRequest) (any, error) {
		return struct{}{}, d.RevokeExternalConnectivity(ctx, r)
	})
	route(rt, nd+"GwAllocCheck", func(ctx context.Context, r *struct{ Options map[string]any }) (any, error) {
		return d.GwAllocCheck(ctx, r.Options)
	})

	ip := "/IpamDriver."
	noBody(rt, ip+"GetCapabilities", func(context.Context) (any, error) { return d.IPAMCapabilities(), nil })
	noBody(rt, ip+"GetDefaultAddressSpaces", func(context.Context) (any, error) { return d.AddressSpaces(), nil })
	route(rt, ip+"RequestPool", func(ctx context.Context, r *dipam.RequestPoolRequest) (any, error) {
		return d.RequestPool(ctx, r)
	})
	route(rt, ip+"ReleasePool", func(ctx context.Context, r *dipam.ReleasePoolRequest) (any, error) {
		return struct{}{}, d.ReleasePool(ctx, r)
	})
	route(rt, ip+"RequestAddress", func(ctx context.Context, r *dipam.RequestAddressRequest) (any, error) {
		return d.RequestAddress(ctx, r)
	})
	route(rt, ip+"ReleaseAddress", func(ctx context.Context, r *dipam.ReleaseAddressRequest) (any, error) {
		return struct{}{}, d.ReleaseAddress(ctx, r)
	})

	noBody(rt, StatePath, func(ctx context.Context) (any, error) { return d.State(ctx) })
	noBody(rt, StatusPath, func(ctx context.Context) (any, error) { return d.Status(ctx) })
	noBody(rt, CheckPath, func(ctx context.Context) (any, error) { return d.CheckKernel(ctx) })
	return rt
}

// route registers a handler that decodes a bounded JSON body into Req. The
// body is read completely before fn runs, so a client that stalls half-way
// never gets as far as the driver's lock.
func route[Req any](rt *router, path string, fn func(context.Context, *Req) (any, error)) {
	rt.routes[path] = func(w http.ResponseWriter, r *http.Request) {
		body, ok := readBody(w, r, path, rt.maxBody)
		if !ok {
			return
		}
		if len(bytes.TrimSpace(body)) == 0 {
			// dockerd sends a body with every call registered here; an empty
			// one is its resend of a call whose connection broke (weft
			// stopped during it): its client cannot rewind the body.
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s: the request has no body; dockerd resends a call that way when weft stopped while answering it, and weft did nothing with this one: run the docker command again", path[1:]))
			return
		}
		req := new(Req)
		if err := json.Unmarshal(body, req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%s: malformed JSON request: %w", path[1:], err))
			return
		}
		noteRequest(r.Context(), req)
		resp, err := fn(r.Context(), req)
		noteError(r.Context(), err)
		respond(w, resp, err)
	}
}

// noBody registers a handler for a call dockerd sends without a body. A
// small body is read and ignored; an oversized one is refused like on any
// other route.
func noBody(rt *router, path string, fn func(context.Context) (any, error)) {
	rt.routes[path] = func(w http.ResponseWriter, r *http.Request) {
		if _, ok := readBody(w, r, path, rt.maxBody); !ok {
			return
		}
		resp, err := fn(r.Context())
		noteError(r.Context(), err)
		respond(w, resp, err)
	}
}

// readBody reads the whole body, at most limit bytes of it, within the
// server's ReadTimeout. On failure it answers the request (413 too large,
// 408 too slow, 400 otherwise) and reports false; the connection is then
// closed, since the rest of the body was never read.
func readBody(w http.ResponseWriter, r *http.Request, path string, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return body, true
	}
	status := http.StatusBadRequest
	var tooBig *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooBig):
		status, err = http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", limit)
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		status, err = http.StatusRequestTimeout, fmt.Errorf("the request body did not arrive in time: %w", err)
	default:
		err = fmt.Errorf("reading request: %w", err)
	}
	w.Header().Set("Connection", "close")
	writeError(w, status, fmt.Errorf("%s: %w", path[1:], err))
	return nil, false
}

// respond writes a successful answer as JSON, or err. The answer is encoded
// before anything is written, so a value that cannot be encoded becomes an
// error answer instead of a 200 with half a body.
func respond(w http.ResponseWriter, resp any, err error) {
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("weft could not encode its answer: %w", err))
		return
	}
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers with err. Every error that leaves the socket passes
// here, and many echo what the client sent (an option value, an ID, the
// path), so the message is made safe for the terminal dockerd prints it on
// and bounded in length (sanitize).
func writeError(w http.ResponseWriter, status int, err error) {
	msg := sanitize(err.Error(), maxErrorBytes)
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorResponse{Err: msg, Error: msg})
}

// cutMarkerRoom is the most room sanitize's "… (N bytes cut)" takes.
const cutMarkerRoom = len("… (") + 20 + len(" bytes cut)")

// sanitize returns s safe to print on a terminal and at most limit bytes
// long (limit must exceed cutMarkerRoom). Control characters (C0, DEL, C1),
// Unicode bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E,
// U+200F, U+061C) and every other rune that is not printable are escaped as
// \xNN or \uXXXX, as are bytes that are not UTF-8: an echoed input could
// otherwise recolour or clear the user's terminal, or reorder what the
// message appears to say. A longer result is cut at a rune boundary and
// ends with "… (N bytes cut)", N counting bytes of s.
func sanitize(s string, limit int) string {
	out := make([]byte, 0, min(len(s)+16, limit))
	keep, keptIn := 0, 0 // a cut point that leaves room for the marker
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		out = appendSafe(out, s[i:i+size], r)
		if len(out) > limit {
			out = append(out[:keep], "… ("...)
			out = strconv.AppendInt(out, int64(len(s)-keptIn), 10)
			return string(append(out, " bytes cut)"...))
		}
		i += size
		if len(out) <= limit-cutMarkerRoom {
			keep, keptIn = len(out), i
		}
	}
	return string(out)
}

// appendSafe appends raw, the encoding of r, or its escape.
func appendSafe(out []byte, raw string, r rune) []byte {
	switch {
	case r == utf8.RuneError && len(raw) == 1: // not UTF-8
		return appendHex(out, `\x`, uint32(raw[0]), 2)
	case r < 0x20 || r == 0x7f:
		return appendHex(out, `\x`, uint32(r), 2)
	case r < 0x7f:
		return append(out, raw...)
	case unicode.IsPrint(r): // false for C1, for the bidi controls (format characters) and for spaces but U+0020
		return append(out, raw...)
	case r <= 0xffff:
		return appendHex(out, `\u`, uint32(r), 4)
	default:
		return appendHex(out, `\U`, uint32(r), 8)
	}
}

func appendHex(out []byte, prefix string, v uint32, width int) []byte {
	out = append(out, prefix...)
	for shift := 4 * (width - 1); shift >= 0; shift -= 4 {
		out = append(out, "0123456789abcdef"[v>>shift&0xf])
	}
	return out
}

// logRequests is observeRequests without an Observer.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return observeRequests(log, noObserver{}, next)
}

// observeRequests logs each call, tells obs of it, and turns a panic into an
// error answer, so one bad request cannot take the plugin down. A call that
// changes state (mutatingRoutes) is logged at info level, with the IDs it
// names and the error it answered, so that the log alone tells what dockerd
// asked of weft and how long each took; the others (capabilities, state
// reads, EndpointOperInfo) at debug. The path is logged sanitized: it is
// whatever the client sent; so are the IDs.
func observeRequests(log *slog.Logger, obs Observer, next http.Handler) http.Handler {
	routeLabel := routeLabeler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		path := sanitize(r.URL.Path, maxLogPathBytes)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		info := &requestInfo{}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		defer func() {
			if p := recover(); p != nil {
				log.Error("request panicked", "path", path, "panic", sanitize(fmt.Sprint(p), maxErrorBytes), "stack", string(debug.Stack()))
				if !rec.wrote { // otherwise part of an answer is out and cannot be taken back
					writeError(rec, http.StatusInternalServerError, fmt.Errorf("weft hit an internal error handling %s; see the plugin log", path))
				}
				rec.status = http.StatusInternalServerError
			}
			took := time.Since(start)
			outcome := outcomeOf(rec.status)
			obs.Request(routeLabel(r.URL.Path), outcome, took)
			level := slog.LevelDebug
			if mutating(r.URL.Path) {
				level = slog.LevelInfo
			}
			if !log.Enabled(r.Context(), level) {
				return
			}
			attrs := append([]any{"path", path, "status", rec.status, "outcome", outcome, "took", took.Round(time.Microsecond)}, info.attrs...)
			if info.err != nil {
				attrs = append(attrs, "err", sanitize(info.err.Error(), maxErrorBytes))
			}
			log.Log(r.Context(), level, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

// mutating says whether the call at path changes weft's state; each such
// call is logged at info level.
func mutating(path string) bool {
	switch path {
	case "/NetworkDriver.CreateNetwork", "/NetworkDriver.DeleteNetwork", "/NetworkDriver.AllocateNetwork",
		"/NetworkDriver.FreeNetwork", "/NetworkDriver.CreateEndpoint", "/NetworkDriver.DeleteEndpoint",
		"/NetworkDriver.Join", "/NetworkDriver.Leave", "/NetworkDriver.ProgramExternalConnectivity",
		"/NetworkDriver.RevokeExternalConnectivity",
		"/IpamDriver.RequestPool", "/IpamDriver.ReleasePool", "/IpamDriver.RequestAddress", "/IpamDriver.ReleaseAddress":
		return true
	}
	return false
}

// routeLabeler returns the function that names a request's route for
// metrics: its path without the leading slash when weft serves it, else
// "other", so that a client sending made-up paths cannot grow the metrics
// without bound.
func routeLabeler() func(path string) string {
	known := map[string]bool{}
	for path := range newRouter(nil, 0).routes {
		known[path] = true
	}
	return func(path string) string {
		if known[path] {
			return path[1:]
		}
		return "other"
	}
}

// requestInfo carries, from a route's handler to observeRequests, what the
// log line of the request names: the IDs of the request and its error.
type requestInfo struct {
	attrs []any
	err   error
}

type requestInfoKey struct{}

// noteRequest records the IDs req names, for the request's log line.
func noteRequest(ctx context.Context, req any) {
	info, ok := ctx.Value(requestInfoKey{}).(*requestInfo)
	if !ok {
		return
	}
	add := func(key, val string) {
		if val != "" {
			info.attrs = append(info.attrs, key, sanitize(val, maxLogPathBytes))
		}
	}
	switch r := req.(type) {
	case *network.CreateNetworkRequest:
		add("network", r.NetworkID)
	case *network.DeleteNetworkRequest:
		add("network", r.NetworkID)
	case *network.AllocateNetworkRequest:
		add("network", r.NetworkID)
	case *network.FreeNetworkRequest:
		add("network", r.NetworkID)
	case *network.CreateEndpointRequest:
		add("network", r.NetworkID)
		add("endpoint", r.EndpointID)
	case *network.DeleteEndpointRequest:
		add("network", r.NetworkID)
		add("endpoint", r.EndpointID)
	case *network.InfoRequest:
		add("network", r.NetworkID)
		add("endpoint", r.EndpointID)
	case *network.JoinRequest:
		add("network", r.NetworkID)
		add("endpoint", r.EndpointID)
		add("sandbox", r.SandboxKey)
	case *network.LeaveRequest:
		add("network", r.NetworkID)
		add("endpoint", r.EndpointID)
	case *network.ProgramExternalConnectivityRequest:
		add("network", r.NetworkID)
		add("endpoint", r.EndpointID)
	case *network.RevokeExternalConnectivityRequest:
		add("network", r.NetworkID)
		add("endpoint", r.EndpointID)
	case *dipam.RequestPoolRequest:
		add("space", r.AddressSpace)
		add("pool", r.Pool)
		add("subpool", r.SubPool)
	case *dipam.ReleasePoolRequest:
		add("pool", r.PoolID)
	case *dipam.RequestAddressRequest:
		add("pool", r.PoolID)
		add("address", r.Address)
	case *dipam.ReleaseAddressRequest:
		add("pool", r.PoolID)
		add("address", r.Address)
	}
}

// noteError records the error a route answers with, for its log line.
func noteError(ctx context.Context, err error) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok && err != nil {
		info.err = err
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status, s.wrote = code, true
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
