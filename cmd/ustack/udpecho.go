package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"

	"ustack/internal/services"
	"ustack/stack"
)

// udpService is --udp-echo: one socket bound to all the stack's addresses
// (IPv4 and, when the stack has it, IPv6), served by services.ServeUDPEcho.
type udpService struct {
	c    *stack.UDPConn
	done chan struct{}
}

// startUDP opens the UDP echo socket if --udp-echo asks for one.
func (f *serveFlags) startUDP(ns *netStack, lc linkConfig, stdout io.Writer) (*udpService, error) {
	if f.udpEcho == 0 {
		return &udpService{}, nil
	}
	// The unspecified address binds every address of the stack, of both
	// families, as a Linux socket on [::] without IPV6_V6ONLY does.
	c, err := ns.st.ListenUDP(netip.AddrPortFrom(netip.Addr{}, uint16(f.udpEcho)))
	if err != nil {
		return nil, fmt.Errorf("--udp-echo %d: %w", f.udpEcho, err)
	}
	u := &udpService{c: c, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		services.ServeUDPEcho(c)
	}()
	fmt.Fprintf(stdout, "listening: udp-echo on %s\n", ns.addrPorts(lc.addr, f.udpEcho))
	return u, nil
}

// stop closes the socket and waits for the service to end.
func (u *udpService) stop() {
	if u.c == nil {
		return
	}
	u.c.Close()
	<-u.done
}

// addrPorts names the stack's addresses with port: "198.18.0.2:80" or
// "198.18.0.2:80 and [2001:2::2]:80".
func (ns *netStack) addrPorts(v4 netip.Addr, port int) string {
	s := netip.AddrPortFrom(v4, uint16(port)).String()
	if ns.addr6.IsValid() {
		s += " and " + netip.AddrPortFrom(ns.addr6, uint16(port)).String()
	}
	return s
}

// printTry prints the curl commands that fetch the HTTPS page, trusting
// the CA serve uses: one per address family.
func (f *serveFlags) printTry(v4, v6 netip.Addr, stdout io.Writer) {
	ca := filepath.Join(f.tlsDir, "ca.pem")
	for _, a := range validAddrs(v4, v6) {
		host := a.String()
		if f.https != 443 {
			host = net.JoinHostPort(host, fmt.Sprint(f.https))
		} else if a.Is6() {
			host = "[" + host + "]"
		}
		opt := ""
		if a.Is6() {
			opt = "-6 "
		}
		fmt.Fprintf(stdout, "try: curl %s--cacert %s https://%s/\n", opt, ca, host)
	}
}
