// Command echosrv is the e2e suite's network probe, built statically and
// mounted into the busybox test containers (busybox has no UDP server and no
// raw ICMPv6). It only talks to addresses it is given.
//
//	echosrv serve NAME [tcp:PORT|udp:PORT]...  answer every TCP connection and
//	                                           UDP datagram with "NAME <client address>"
//	echosrv dial tcp|udp HOST:PORT              print the answer (exit 1 if none in 3 s)
//	echosrv send-icmp6 TYPE IFACE               send one ICMPv6 message of TYPE to
//	                                            ff02::1 on IFACE, hop limit 255
//	echosrv watch-icmp6 SECONDS                 print the ICMPv6 types received
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "dial":
		err = dial(os.Args[2:])
	case "send-icmp6":
		err = sendICMP6(os.Args[2:])
	case "watch-icmp6":
		err = watchICMP6(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echosrv:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: echosrv serve NAME [tcp:PORT|udp:PORT]... | dial tcp|udp HOST:PORT | send-icmp6 TYPE IFACE | watch-icmp6 SECONDS")
	os.Exit(2)
}

func host(a net.Addr) string {
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func serve(args []string) error {
	if len(args) < 2 {
		usage()
	}
	name := args[0]
	for _, spec := range args[1:] {
		proto, port, ok := strings.Cut(spec, ":")
		if !ok {
			usage()
		}
		switch proto {
		case "tcp":
			ln, err := net.Listen("tcp", ":"+port)
			if err != nil {
				return err
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_, _ = io.WriteString(c, name+" "+host(c.RemoteAddr())+"\n")
					_ = c.Close()
				}
			}()
		case "udp":
			pc, err := net.ListenPacket("udp", ":"+port)
			if err != nil {
				return err
			}
			go func() {
				buf := make([]byte, 1500)
				for {
					_, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo([]byte(name+" "+host(from)), from)
				}
			}()
		default:
			usage()
		}
	}
	select {}
}

func dial(args []string) error {
	if len(args) != 2 {
		usage()
	}
	c, err := net.DialTimeout(args[0], args[1], 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if args[0] == "udp" {
		if _, err := c.Write([]byte("hi")); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		fmt.Println(string(buf[:n]))
		return nil
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Print(line)
	return nil
}

func sendICMP6(args []string) error {
	if len(args) != 2 {
		usage()
	}
	typ, err := strconv.Atoi(args[0])
	if err != nil || typ < 0 || typ > 255 {
		usage()
	}
	pc, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	defer pc.Close()
	raw, err := pc.(*net.IPConn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, 255)
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	msg := make([]byte, 16)
	msg[0] = byte(typ)
	if typ == 134 { // router advertisement: hop limit 64, lifetime 1800 s
		msg[4] = 64
		binary.BigEndian.PutUint16(msg[6:8], 1800)
	}
	_, err = pc.WriteTo(msg, &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: args[1]})
	return err
}

func watchICMP6(args []string) error {
	if len(args) != 1 {
		usage()
	}
	secs, err := strconv.Atoi(args[0])
	if err != nil {
		usage()
	}
	pc, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	defer pc.Close()
	_ = pc.SetReadDeadline(time.Now().Add(time.Duration(secs) * time.Second))
	buf := make([]byte, 1500)
	var seen []string
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		if n > 0 {
			seen = append(seen, strconv.Itoa(int(buf[0])))
		}
	}
	fmt.Println(strings.Join(seen, " "))
	return nil
}
