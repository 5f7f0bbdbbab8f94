//go:build bench

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"
)

// The request/response tool: iperf3 has no RR mode, and the test image has
// no tools, so the harness binary itself is run inside the namespaces with
// nsenter. One TCP connection (TCP_NODELAY, Go's default); the client sends
// a SIZE-byte request, the server echoes it, the client times each exchange.
// This is netperf's TCP_RR with one transaction in flight.

// rrStats is what rr-client prints (JSON, one line).
type rrStats struct {
	N       int
	Seconds float64
	Rate    float64 // transactions per second
	P50us   float64
	P90us   float64
	P99us   float64
	MeanUs  float64
}

func rrServer(args []string) error {
	fs := flag.NewFlagSet("rr-server", flag.ExitOnError)
	addr := fs.String("addr", ":7000", "listen address")
	size := fs.Int("size", 64, "message size (bytes)")
	_ = fs.Parse(args)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer func() { _ = c.Close() }()
			buf := make([]byte, *size)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

func rrClient(args []string) error {
	fs := flag.NewFlagSet("rr-client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	dur := fs.Duration("duration", 5*time.Second, "how long to measure")
	warm := fs.Int("warmup", 500, "exchanges before measuring")
	size := fs.Int("size", 64, "message size (bytes)")
	_ = fs.Parse(args)
	if *addr == "" {
		return errors.New("rr-client: -addr is required")
	}
	var c net.Conn
	var err error
	for range 50 { // the server may still be starting
		if c, err = net.DialTimeout("tcp", *addr, time.Second); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	buf := make([]byte, *size)
	exchange := func() error {
		if _, err := c.Write(buf); err != nil {
			return err
		}
		_, err := io.ReadFull(c, buf)
		return err
	}
	for range *warm {
		if err := exchange(); err != nil {
			return err
		}
	}
	lat := make([]float64, 0, 1<<20)
	start := time.Now()
	deadline := start.Add(*dur)
	for {
		t0 := time.Now()
		if t0.After(deadline) {
			break
		}
		if err := exchange(); err != nil {
			return err
		}
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1000)
	}
	elapsed := time.Since(start).Seconds()
	if len(lat) == 0 {
		return errors.New("rr-client: no exchange completed")
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	st := rrStats{N: len(lat), Seconds: elapsed, Rate: float64(len(lat)) / elapsed,
		P50us: quantileSorted(s, 0.5), P90us: quantileSorted(s, 0.9), P99us: quantileSorted(s, 0.99), MeanUs: mean(lat)}
	b, _ := json.Marshal(st)
	_, err = fmt.Fprintln(os.Stdout, string(b))
	return err
}
