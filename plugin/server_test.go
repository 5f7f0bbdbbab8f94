package plugin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/weftnet/weft/dataplane"
	"github.com/weftnet/weft/ipam"
	"github.com/weftnet/weft/store/memstore"
)

// patience bounds every wait in these tests. It is far above what any step
// takes even on a loaded machine: the tests assert that something happens,
// not how fast.
const patience = 2 * time.Minute

// shortTempDir is a temporary directory with a short path: a socket path may
// not exceed 107 bytes, and t.TempDir's names grow with the test's name.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// unixHTTPClient talks HTTP over the unix socket sock, as dockerd does.
func unixHTTPClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// serveOn serves d with NewServer(opts) on a socket made by Listen.
func serveOn(t *testing.T, d *Driver, log *slog.Logger, opts ServerOptions) (string, *wireClient) {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "weft.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(d, log, opts)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock, &wireClient{t: t, c: unixHTTPClient(sock)}
}

// testDeps are what startDriverWith gives a driver: st, the fake mode m as
// the bridge mode, IPAM with the default pools.
func testDeps(t *testing.T, st *memstore.Store, m *fakeMode) Deps {
	t.Helper()
	pools, err := ipam.ParseDefaultPools(ipam.DefaultPoolsSetting)
	if err != nil {
		t.Fatal(err)
	}
	return Deps{Store: st, IPAM: ipam.New(pools), Modes: map[dataplane.ModeName]dataplane.Mode{dataplane.Bridge: m},
		Routes: fakeRoutes{netip.MustParsePrefix("10.208.0.0/24")}}
}

// TestListenSocketIsOwnerOnly: the socket has mode 0600 and weft's owner as
// soon as Listen returns, even under a umask that would let everyone in, and
// nothing but the socket is left in its directory.
func TestListenSocketIsOwnerOnly(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "weft.sock")
	// Wide open while Listen runs (this test is not parallel, so nothing
	// else in this process creates files meanwhile): the mode must not come
	// from the umask.
	old := syscall.Umask(0)
	l, err := Listen(sock)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with permissions 0600", fi.Mode())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != uint32(os.Geteuid()) {
		t.Fatalf("socket owner %v, want uid %d", fi.Sys(), os.Geteuid())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "weft.sock" {
		t.Fatalf("directory holds %v, want only weft.sock (no private directory left)", entries)
	}
	if got := l.Addr().String(); got != sock {
		t.Fatalf("listener address %s, want %s", got, sock)
	}
	// And it is the listening socket, not a copy of a name.
	go func() {
		if c, err := l.Accept(); err == nil {
			_ = c.Close()
		}
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("connecting to the socket: %v", err)
	}
	_ = c.Close()
}

// TestListenLiveStaleAndForeign: a socket another process serves stops the
// start; a stale one is replaced; anything that is not a socket is left
// alone.
func TestListenLiveStaleAndForeign(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "weft.sock")
	first, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := first.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another process is already serving") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Fatalf("the first listener lost its socket: %v", err)
	} else {
		_ = c.Close()
	}

	// Closing leaves the name behind, as a killed weft does.
	_ = first.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("want a stale socket for the next step: %v", err)
	}
	again, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	_ = again.Close()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("replaced socket: %v %v", fi, err)
	}

	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("Listen touched a regular file: %q %v", b, err)
	}
}

// closed is what a raw connection saw until the server closed it.
type closed struct {
	data []byte
	err  error
	at   time.Time
}

// rawConn opens a connection to sock, writes partial, and reports on the
// returned channel once the server closes it.
func rawConn(t *testing.T, sock, partial string) <-chan closed {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, partial); err != nil {
		t.Fatal(err)
	}
	done := make(chan closed, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(patience))
		data, err := io.ReadAll(c)
		done <- closed{data: data, err: err, at: time.Now()}
	}()
	return done
}

// TestStalledClientsHoldNothing: a client that sends half its headers, and
// one that sends its headers and half a body, are cut off by the read
// timeouts, while a request on another connection, to the same mutating
// route, is served in the meantime.
func TestStalledClientsHoldNothing(t *testing.T) {
	d, _ := startDriver(t, memstore.New())
	// 5s: long enough that serving one request on a loaded machine fits well
	// inside it, which is all the ordering check below relies on.
	opts := ServerOptions{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	sock, w := serveOn(t, d, testLogger(), opts)

	halfBody := rawConn(t, sock, "POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\n"+
		"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"+`{"AddressSpace":"weft-local",`)
	halfHeaders := rawConn(t, sock, "POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plu")

	w.ok("/IpamDriver.RequestPool", `{"AddressSpace":"weft-local","Pool":"10.1.0.0/24"}`)
	w.ok("/NetworkDriver.GetCapabilities", "")
	served := time.Now()

	for name, ch := range map[string]<-chan closed{"half a body": halfBody, "half the headers": halfHeaders} {
		var got closed
		select {
		case got = <-ch:
		case <-time.After(patience + time.Second):
			t.Fatalf("%s: connection still open after %v", name, patience)
		}
		if got.err != nil {
			t.Fatalf("%s: connection not closed by the server: %v", name, got.err)
		}
		if got.at.Before(served) {
			t.Fatalf("%s: closed before the other connection's requests were served: they waited for it", name)
		}
		if name == "half a body" {
			if !bytes.HasPrefix(got.data, []byte("HTTP/1.1 408 ")) || !bytes.Contains(got.data, []byte("did not arrive in time")) {
				t.Fatalf("%s: answer %q, want a 408 saying the body did not arrive in time", name, got.data)
			}
		}
	}
	// The stalled request reserved nothing, the served one its pool.
	s, err := d.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pools) != 1 || s.Pools[0].ID != "weft-local/10.1.0.0/24" {
		t.Fatalf("pools %v, want only the served request's", s.Pools)
	}
}

// TestLongCallOutlivesReadTimeout: the read timeout bounds reading a request,
// not answering it. A call that waits (here for the driver to start) far
// longer than ReadTimeout is answered normally, not cancelled.
func TestLongCallOutlivesReadTimeout(t *testing.T) {
	d, err := NewDriver(testLogger(), ScopeLocal)
	if err != nil {
		t.Fatal(err)
	}
	const readTimeout = 100 * time.Millisecond
	sock, _ := serveOn(t, d, testLogger(), ServerOptions{ReadHeaderTimeout: readTimeout, ReadTimeout: readTimeout})
	type answer struct {
		status int
		body   string
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := unixHTTPClient(sock).Post("http://plugin/NetworkDriver.GwAllocCheck", "application/json", strings.NewReader(`{"Options":{}}`))
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- answer{status: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case a := <-done:
		t.Fatalf("answered before the driver started (cut off by the read timeout?): %+v", a)
	case <-time.After(10 * readTimeout):
	}
	if err := d.Start(context.Background(), testDeps(t, memstore.New(), newFakeMode())); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("long call: %+v", a)
		}
	case <-time.After(patience):
		t.Fatal("no answer after the driver started")
	}
}

// bodylessRoutes are the calls dockerd (or an operator) sends without a body.
var bodylessRoutes = []string{
	"/Plugin.Activate", "/NetworkDriver.GetCapabilities", "/IpamDriver.GetCapabilities",
	"/IpamDriver.GetDefaultAddressSpaces", StatePath, StatusPath, CheckPath,
}

// TestOversizedBodies: every body-less route ignores a small body and answers
// an oversized one with a 413 error a plugin client can read, over a
// connection that stays orderly; so does a route with a body.
func TestOversizedBodies(t *testing.T) {
	d, _ := startDriver(t, memstore.New())
	sock, w := serveOn(t, d, testLogger(), ServerOptions{})
	over := strings.Repeat("x", MaxRequestBytes+1)
	for _, path := range bodylessRoutes {
		w.ok(path, "")
		w.ok(path, `{"ignored":["by", "this", "route"]}`)
		w.ok(path, "not JSON at all")
		checkTooLarge(t, path, func() (int, map[string]any) { return w.post(path, over) })
		checkTooLarge(t, path, func() (int, map[string]any) { return postRaw(t, sock, path, 8*MaxRequestBytes) })
	}
	checkTooLarge(t, "/NetworkDriver.CreateNetwork", func() (int, map[string]any) {
		return postRaw(t, sock, "/NetworkDriver.CreateNetwork", 8*MaxRequestBytes)
	})
	w.ok("/NetworkDriver.GetCapabilities", "")
}

// TestEmptyBodyIsAResend: every route dockerd sends a body to answers an
// empty one (dockerd's resend of a call whose connection broke) with an error
// saying so, and changes nothing.
func TestEmptyBodyIsAResend(t *testing.T) {
	st := memstore.New()
	d, m := startDriver(t, st)
	_, w := serveOn(t, d, testLogger(), ServerOptions{})
	before := len(m.calls) // Start's reconcile
	bodyless := map[string]bool{}
	for _, p := range bodylessRoutes {
		bodyless[p] = true
	}
	n := 0
	for path := range newRouter(d, MaxRequestBytes).routes {
		if bodyless[path] {
			continue
		}
		n++
		for _, body := range []string{"", " \n"} {
			status, out := w.post(path, body)
			msg, _ := out["Err"].(string)
			if status != http.StatusBadRequest || !strings.Contains(msg, "no body") || !strings.Contains(msg, "run the docker command again") {
				t.Errorf("%s with body %q: status %d, answer %q; want 400 saying the body is missing", path, body, status, msg)
			}
		}
	}
	if n < 15 {
		t.Fatalf("only %d routes with a body found", n)
	}
	if recs, _ := st.List(context.Background(), bucketNetworks); len(recs) != 0 || len(m.calls) != before {
		t.Fatalf("empty bodies changed state: %d network records, mode calls %v", len(recs), m.calls[before:])
	}
}

func checkTooLarge(t *testing.T, path string, post func() (int, map[string]any)) {
	t.Helper()
	status, out := post()
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("%s, oversized body: status %d (%v), want 413", path, status, out)
	}
	if msg, _ := out["Err"].(string); msg == "" || out["Error"] != msg || !strings.Contains(msg, "larger than") {
		t.Fatalf("%s, oversized body: answer %v, want Err and Error saying it is too large", path, out)
	}
}

// postRaw sends a body of size bytes to path over a connection of its own,
// writing it while it reads the answer (the server answers before the body
// is in), and returns the status and the decoded answer.
func postRaw(t *testing.T, sock, path string, size int) (int, map[string]any) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(patience))
	go func() {
		// Fails once the server hangs up on the rest of the body; fine.
		_, _ = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: plugin\r\nContent-Length: %d\r\n\r\n", path, size)
		_, _ = io.Copy(c, io.LimitReader(zeros{}, int64(size)))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s, %d-byte body: no answer: %v", path, size, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s, %d-byte body: answer cut off: %v", path, size, err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: answer is not a JSON object: %q", path, raw)
	}
	return resp.StatusCode, out
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

func TestSanitize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text, ascii: ~!@#$%^&*()", "plain text, ascii: ~!@#$%^&*()"},
		{"héllo 日本 ✓ \U0001F600", "héllo 日本 ✓ \U0001F600"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"line\nbreak\r\ttab\x00nul\x7fdel", `line\x0abreak\x0d\x09tab\x00nul\x7fdel`},
		{"c1:\u0085\u009b", `c1:\u0085\u009b`},
		{"bidi:\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c", `bidi:\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c`},
		{"invisible:\u200b\ufeff\u00a0\u2028\U000e0041", `invisible:\u200b\ufeff\u00a0\u2028\U000e0041`},
		{"not utf-8:\xff\xfe\xc3", `not utf-8:\xff\xfe\xc3`},
	} {
		if got := sanitize(c.in, maxErrorBytes); got != c.want {
			t.Errorf("sanitize(%q) = %q, want %q", c.in, got, c.want)
		}
	}

	for _, c := range []struct {
		name string
		in   string
		unit int // bytes of output per rune of input
	}{
		{"two-byte runes", strings.Repeat("é", 5000), 2},
		{"escaped controls", strings.Repeat("\x1b", 5000), 4},
		{"escaped bidi", strings.Repeat("\u202e", 5000), 6},
	} {
		got := sanitize(c.in, 100)
		kept, marker, ok := strings.Cut(got, "… (")
		if !ok || len(got) > 100 || !utf8.ValidString(got) || !strings.HasSuffix(marker, " bytes cut)") {
			t.Fatalf("%s: sanitize = %q (%d bytes), want at most 100 bytes ending in the cut marker", c.name, got, len(got))
		}
		inKept := len(kept) / c.unit * (len(c.in) / 5000) // input bytes shown
		if len(kept)%c.unit != 0 || sanitize(c.in[:inKept], 1<<20) != kept {
			t.Fatalf("%s: kept %q is not the escape of whole runes", c.name, kept)
		}
		if want := fmt.Sprintf("%d bytes cut)", len(c.in)-inKept); marker != want {
			t.Fatalf("%s: marker %q, want %q", c.name, marker, want)
		}
	}
}

// TestErrorsAreSanitized: what the client sent comes back escaped and
// bounded, whatever route or layer echoes it, and is logged escaped.
func TestErrorsAreSanitized(t *testing.T) {
	d, _ := startDriver(t, memstore.New())
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, w := serveOn(t, d, log, ServerOptions{})
	hostile := "\x1b[31m\u202e\n" + strings.Repeat("a", 100<<10)

	check := func(what, msg string, want ...string) {
		t.Helper()
		if len(msg) > maxErrorBytes || !strings.HasSuffix(msg, " bytes cut)") {
			t.Fatalf("%s: message of %d bytes, want at most %d ending in the cut marker: %.200q", what, len(msg), maxErrorBytes, msg)
		}
		if bad := unsafeRune(msg); bad != "" {
			t.Fatalf("%s: message holds %s: %.200q", what, bad, msg)
		}
		for _, s := range want {
			if !strings.Contains(msg, s) {
				t.Fatalf("%s: message does not show %s: %.200q", what, s, msg)
			}
		}
	}

	body, _ := json.Marshal(map[string]any{
		"NetworkID": wireNet,
		"Options":   map[string]any{keyGeneric: map[string]any{optBridgeName: hostile}},
		"IPv4Data":  []map[string]string{{"AddressSpace": "weft-local", "Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24"}},
	})
	status, out := w.post("/NetworkDriver.CreateNetwork", string(body))
	msg, _ := out["Err"].(string)
	if status == http.StatusOK || out["Error"] != msg {
		t.Fatalf("hostile bridge name: status %d, answer %.300v", status, out)
	}
	check("bridge name", msg, `\x1b[31m`, `\u202e`)

	// The unknown-route answer echoes the path with %s: only writeError's
	// escaping stands between it and the terminal.
	status, out = w.post("/NetworkDriver.%1B[31m%E2%80%AE%0A"+strings.Repeat("b", 10<<10), "{}")
	msg, _ = out["Err"].(string)
	if status != http.StatusNotFound {
		t.Fatalf("unknown route: status %d", status)
	}
	check("unknown route", msg, `\x1b[31m\u202e\x0a`, "does not implement")

	if strings.Contains(logs.String(), "\u202e") || !strings.Contains(logs.String(), `\\x1b[31m\\u202e\\x0a`) {
		t.Fatalf("the request log does not show the path escaped: %.500s", logs.String())
	}

	// writeError itself, under every answer.
	rec := httptest.NewRecorder()
	writeError(rec, http.StatusTeapot, errors.New("title \x1b]0;pwned\x07 \u2067reversed\u2069"))
	var er errorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || rec.Code != http.StatusTeapot {
		t.Fatalf("writeError: %d %q", rec.Code, rec.Body)
	}
	if want := `title \x1b]0;pwned\x07 \u2067reversed\u2069`; er.Err != want || er.Error != want {
		t.Fatalf("writeError sent %+v, want both fields %q", er, want)
	}
}

// unsafeRune describes the first rune of s that must not reach a terminal
// raw, or returns "".
func unsafeRune(s string) string {
	if !utf8.ValidString(s) {
		return "bytes that are not UTF-8"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x061c || r == 0x200e || r == 0x200f ||
			(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return fmt.Sprintf("the raw rune %U", r)
		}
	}
	return ""
}

// TestPanicsBecomeErrors: a handler that panics answers a clean 500 and the
// server goes on.
func TestPanicsBecomeErrors(t *testing.T) {
	var logs bytes.Buffer
	h := logRequests(slog.New(slog.NewTextHandler(&logs, nil)), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/NetworkDriver.\u202eJoin", nil))
	var er errorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || rec.Code != http.StatusInternalServerError ||
		!strings.Contains(er.Err, "internal error") || !strings.Contains(er.Err, `\u202e`) {
		t.Fatalf("panic answered %d %q", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "request panicked") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
}
