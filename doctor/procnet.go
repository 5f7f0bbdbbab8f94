package doctor

import (
	"strconv"
	"strings"
)

// udpSocket is one line of /proc/net/udp or udp6.
type udpSocket struct {
	addr  string // local address:port, hex as the kernel writes it
	inode uint64
}

// parseProcUDP returns the sockets of a /proc/net/udp{,6} listing whose
// local port is port. Lines it cannot read are skipped.
func parseProcUDP(text string, port uint16) []udpSocket {
	var out []udpSocket
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil || uint16(p) != port {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, udpSocket{addr: f[1], inode: ino})
	}
	return out
}

// socketInode reads a /proc/PID/fd link target "socket:[12345]".
func socketInode(target string) (uint64, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
