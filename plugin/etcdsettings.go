package plugin

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// EtcdSettings say how to reach the cluster store (WEFT_STORE=etcd://...
// and WEFT_ETCD_CA/CERT/KEY). Endpoints is empty when there is none.
type EtcdSettings struct {
	// Endpoints are client URLs, canonical: http(s)://host:port or
	// unix:///absolute/path.
	Endpoints []string
	// CAFile, CertFile and KeyFile are the TLS files; any of them set means
	// TLS, and host:port endpoints are then reached with https.
	CAFile, CertFile, KeyFile string
}

// Enabled says whether a cluster store is configured.
func (e EtcdSettings) Enabled() bool { return len(e.Endpoints) > 0 }

// Name describes the store for errors: "etcd at URL,URL".
func (e EtcdSettings) Name() string { return "etcd at " + strings.Join(e.Endpoints, ",") }

// storeSyntax is the accepted form of WEFT_STORE, quoted in its errors.
const storeSyntax = "leave it empty for the embedded store, or use etcd://host:2379,host2:2379 " +
	"(an endpoint may also be a URL: http://host:2379, https://host:2379 or unix:///path/to/socket)"

// parseEtcd reads WEFT_STORE and the etcd TLS settings. Every endpoint is
// checked and written back canonically, so what reaches the etcd client is
// exactly what was validated.
func parseEtcd(storeSetting, ca, cert, key string) (EtcdSettings, error) {
	var e EtcdSettings
	tls := ca != "" || cert != "" || key != ""
	if storeSetting == "" {
		if tls {
			return e, fmt.Errorf("WEFT_ETCD_CA, WEFT_ETCD_CERT and WEFT_ETCD_KEY are for the etcd cluster store, but WEFT_STORE does not name one (set WEFT_STORE=etcd://host:2379,...)")
		}
		return e, nil
	}
	rest, ok := strings.CutPrefix(storeSetting, "etcd://")
	if !ok || rest == "" {
		return e, fmt.Errorf("WEFT_STORE %q is not valid: %s", storeSetting, storeSyntax)
	}
	for name, f := range map[string]string{"WEFT_ETCD_CA": ca, "WEFT_ETCD_CERT": cert, "WEFT_ETCD_KEY": key} {
		if f != "" && (!filepath.IsAbs(f) || filepath.Clean(f) != f) {
			return e, fmt.Errorf("%s %q must be an absolute, clean file path", name, f)
		}
	}
	if (cert == "") != (key == "") {
		return e, fmt.Errorf("WEFT_ETCD_CERT and WEFT_ETCD_KEY go together: set both (the client certificate and its key) or neither")
	}
	e.CAFile, e.CertFile, e.KeyFile = ca, cert, key
	seen := map[string]bool{}
	for _, raw := range strings.Split(rest, ",") {
		ep, err := canonicalEndpoint(raw, tls)
		if err != nil {
			return EtcdSettings{}, fmt.Errorf("WEFT_STORE: etcd endpoint %q is not valid: %w; %s", raw, err, storeSyntax)
		}
		if !seen[ep] {
			seen[ep] = true
			e.Endpoints = append(e.Endpoints, ep)
		}
	}
	return e, nil
}

// canonicalEndpoint turns one endpoint of WEFT_STORE into a client URL.
func canonicalEndpoint(raw string, tls bool) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("it is empty")
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("it contains spaces or control characters")
	}
	if !strings.Contains(raw, "://") {
		scheme := "http"
		if tls {
			scheme = "https"
		}
		hp, err := hostPort(raw)
		if err != nil {
			return "", err
		}
		return scheme + "://" + hp, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("it is not a URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("it has parts an etcd endpoint has not (user, query or fragment)")
	}
	switch u.Scheme {
	case "http", "https":
		if u.Path != "" && u.Path != "/" {
			return "", fmt.Errorf("an http(s) endpoint has no path")
		}
		hp, err := hostPort(u.Host)
		if err != nil {
			return "", err
		}
		return u.Scheme + "://" + hp, nil
	case "unix":
		if u.Host != "" || !filepath.IsAbs(u.Path) || filepath.Clean(u.Path) != u.Path {
			return "", fmt.Errorf("a unix endpoint is unix:///absolute/path")
		}
		return "unix://" + u.Path, nil
	}
	return "", fmt.Errorf("scheme %q is not one of http, https, unix", u.Scheme)
}

// hostPort checks host:port: a DNS name or an IP address, and a port.
func hostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("it is not host:port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("an IPv6 zone is not supported")
		}
		return net.JoinHostPort(a.String(), port), nil
	}
	if !validHostname(host) {
		return "", fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// validHostname accepts RFC 1123 names: dot-separated labels of letters,
// digits and inner hyphens, 253 characters at most.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
