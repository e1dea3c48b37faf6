package tcp

import (
	"syscall"
	"time"

	"ustack/stack/seqnum"
)

// ICMP errors for a connection (RFC 1122 §4.2.3.9, RFC 5927 §4.1, RFC 1191).
// The stack finds the connection from the TCP header an ICMP error quotes
// and calls ICMPError or PathMTU with the quoted sequence number; the
// mapping of ICMP type and code to an errno is the network layer's, as
// Linux's icmp_err_convert table has it.

// ICMPError is an ICMP destination unreachable, time exceeded or parameter
// problem about a segment this connection sent with sequence number seq.
// abortsOpen is Linux's rule for an opening connection: which errors end a
// connect at once. It reports whether the error was taken (false: the
// quoted sequence number is not one we have outstanding, RFC 5927 §4.1).
//
// As Linux (tcp_v4_err) does, and RFC 1122 §4.2.3.9 allows ("SHOULD make
// the information available to the application"): in SYN-SENT and
// SYN-RECEIVED an error ends the connection attempt at once with err (no
// RST: the path is broken); in a synchronized state it is a soft error,
// remembered and reported only if the connection later times out, in
// place of ETIMEDOUT (RFC 1122: hard errors "SHOULD NOT" abort an
// established connection; Linux aborts on none without IP_RECVERR).
func (c *Conn) ICMPError(now time.Time, seq seqnum.Value, err syscall.Errno) bool {
	if !c.icmpSeqOK(seq) {
		c.stats.icmpOutOfWindow++
		return false
	}
	switch c.state {
	case SynSent:
		c.fail(now, err, "rcv ICMP "+err.Error())
	case SynReceived:
		if c.passive {
			// Linux drops the request (tcp_req_err): the listener goes on.
			c.setState(now, Closed, "rcv ICMP "+err.Error())
			return true
		}
		c.fail(now, err, "rcv ICMP "+err.Error())
	default:
		if c.state.Synchronized() {
			c.softErr = uint16(err)
		}
	}
	return true
}

// icmpSeqOK is RFC 5927 §4.1's check, as Linux does it: the quoted sequence
// number lies in SND.UNA..SND.NXT, both ends included.
func (c *Conn) icmpSeqOK(seq seqnum.Value) bool {
	if c.state == Listen || c.state == Closed {
		return false
	}
	return seq.InRange(c.snd.una, c.snd.max.Add(1))
}

// minPathMTU is the smallest path MTU TCP takes from an ICMP "fragmentation
// needed" (Linux's ip_rt_min_pmtu, 552); a smaller one is raised to it.
// Over IPv6 the floor is the minimum link MTU, 1280 (RFC 8201 §4: a node
// "MUST NOT reduce its estimate of the Path MTU below the IPv6 minimum
// link MTU").
const (
	minPathMTU   = 552
	minPathMTUv6 = 1280
)

// ipv6 reports whether the connection runs over IPv6.
func (c *Conn) ipv6() bool { return c.ID.Remote.Addr().Is6() && !c.ID.Remote.Addr().Is4In6() }

// netHeaderLen is the IP header that MSS does not count: 20 bytes for
// IPv4, 40 for IPv6 (RFC 9293 §3.7.1, RFC 8200 §8.3: the MSS of a
// connection over IPv6 is the path MTU minus 60).
func (c *Conn) netHeaderLen() int {
	if c.ipv6() {
		return ipv6HeaderLen
	}
	return ipv4HeaderLen
}

// PathMTU takes a lower path MTU from an ICMP "fragmentation needed" (RFC
// 1191 §6.2) about the segment at seq, or from the stack's path-MTU cache.
// When it shrinks the largest segment, the segments in flight are sent
// again in the new size at once, without a congestion response (Linux's
// tcp_simple_retransmit: the loss was not congestion).
func (c *Conn) PathMTU(now time.Time, seq seqnum.Value, mtu int) bool {
	if c.state != SynSent && c.state != SynReceived && !c.icmpSeqOK(seq) {
		c.stats.icmpOutOfWindow++
		return false
	}
	if c.ipv6() {
		mtu = max(mtu, minPathMTUv6)
	} else {
		mtu = max(mtu, minPathMTU)
	}
	if c.pmtu == 0 || mtu < int(c.pmtu) {
		c.pmtu = int32(mtu) // kept for the handshake's MSS (takeSynOptions)
	}
	mss := mtu - c.netHeaderLen() - tcpHeaderLen
	if mss >= int(c.snd.mss) {
		return true
	}
	c.snd.mss = int32(mss)
	if c.state.Synchronized() && c.snd.una != c.snd.max {
		c.snd.nxt = c.snd.una
		c.output(now)
		// Linux resends in the Loss state, where no tail loss probe is
		// sent; the next ACK re-arms it.
		c.rec.stopTimers()
	}
	return true
}

// Header sizes without options: what MSS counts (RFC 9293 §3.7.1).
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	tcpHeaderLen  = 20
)

// SoftError is the last ICMP error taken in a synchronized state, or nil.
func (c *Conn) SoftError() error {
	if c.softErr == 0 {
		return nil
	}
	return syscall.Errno(c.softErr)
}
