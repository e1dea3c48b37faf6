package services

import (
	"errors"
	"net"
	"syscall"
)

// ServeUDPEcho is RFC 862's UDP echo: every datagram read from c goes back
// to its sender, whole (up to 65535 bytes). It returns nil once c is
// closed, or the first other read error. A failed send (the sender's
// address refused, a pending ICMP error) drops that one echo, as a
// datagram may be lost anyway.
func ServeUDPEcho(c net.PacketConn) error {
	buf := make([]byte, 0xffff)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if temporary(err) || isICMPError(err) {
				continue
			}
			return err
		}
		c.WriteTo(buf[:n], from)
	}
}

// isICMPError reports an error a socket reports from an ICMP message
// about one datagram it sent (Linux's icmp_err_convert errnos): not the
// socket's end.
func isICMPError(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN,
		syscall.ENONET, syscall.ENOPROTOOPT, syscall.EOPNOTSUPP, syscall.EMSGSIZE, syscall.EPROTO:
		return true
	}
	return false
}
