package conformance

import (
	"time"

	"ustack/stack/header"
)

// dialToSyn is the start of the scenarios about an opening connection: the
// application dials, the peer records the SYN.
func dialToSyn(steps ...Step) []Step {
	return append([]Step{Dial(), Expect(1, time.Second)}, steps...)
}

// icmpScenarios are about ICMP errors for TCP (RFC 1122 §4.2.3.9, RFC 5927,
// RFC 1191), which the peer sends as the host or router on the path.
func icmpScenarios() []Scenario {
	return []Scenario{{
		Name: "icmp-port-unreachable-connect",
		About: "The SYN is answered with ICMP port unreachable quoting it: Linux (tcp_v4_err in SYN-SENT) ends the connect at once with ECONNREFUSED; " +
			"watched 1.2 s, past the first SYN retransmission timeout (1 s): no SYN again, no RST.",
		Steps: dialToSyn(Unreachable(header.ICMPPortUnreach), Returned(), Watch(1200*time.Millisecond)),
	}, {
		Name:  "icmp-host-unreachable-connect",
		About: "The SYN is answered with ICMP host unreachable quoting it: Linux ends the connect at once with EHOSTUNREACH; watched 300 ms.",
		Steps: dialToSyn(Unreachable(header.ICMPHostUnreach), Returned(), Watch(quiet)),
	}, {
		Name: "icmp-out-of-window",
		About: "ICMP port unreachable quoting the SYN's SEQ + 1000, a number the target never sent (RFC 5927 §4.1): ignored; " +
			"the SYN is retransmitted (timed), and the peer's SYN-ACK then completes the dial.",
		Steps: dialToSyn(Unreachable(header.ICMPPortUnreach, QuotedSeq(1000)), ExpectTimed(1, 1500*time.Millisecond),
			Send("S.", Opts(AllOpts)), Expect(1, replyWithin), Dialed()),
	}, {
		Name: "icmp-established-soft",
		About: "ESTABLISHED, 100 bytes unacknowledged, ICMP host unreachable quoting them: a soft error (RFC 1122 §4.2.3.9), the connection is not aborted; " +
			"the data is sent again within 1 s, the peer's ACK completes the exchange, and 100 more bytes go out.",
		Listen: true,
		Steps: established(Write(100), Expect(1, replyWithin), Unreachable(header.ICMPHostUnreach), Expect(1, time.Second),
			Send("."), Watch(quiet), Write(100), Expect(1, replyWithin)),
	}, {
		Name: "icmp-frag-needed",
		About: "ESTABLISHED (MSS 1460), the application writes 3000 bytes; the peer answers the first segment with ICMP fragmentation needed, next-hop MTU 1000 (RFC 1191): " +
			"what is sent again in 150 ms (Linux: tcp_simple_retransmit, segments of at most 960 bytes less options), then the peer ACKs all.",
		Listen: true,
		Steps: established(Write(3000), Take(1, replyWithin), Unreachable(header.ICMPFragNeeded, NextHopMTU(1000)),
			Watch(150*time.Millisecond), Send("."), Watch(quiet)),
	}}
}

// errorScenarios are about what the application sees, and the timers that
// end a connection.
func errorScenarios() []Scenario {
	return []Scenario{{
		Name: "write-before-handshake",
		About: "The application dials and writes 100 bytes while the handshake is under way; the peer answers the SYN with RST|ACK: " +
			"the pending write fails at once with ECONNREFUSED (Linux: a blocking write in SYN-SENT waits in sk_stream_wait_connect, then takes the error).",
		Steps: []Step{DialWrite(100), Expect(1, time.Second), Send("R."), Returned(), Watch(quiet)},
	}, {
		Name: "zero-window-probes-unanswered",
		About: "The peer announces window 0 and never answers, the application writes 100 bytes: the intervals of the first three window probes, to 100 ms " +
			"(Linux: the first after the RTO, 200 ms here, then doubling).",
		Listen: true,
		Steps:  established(Send(".", Win(0)), Write(100), ExpectIntervals(3, 2*time.Second)),
	}, {
		Name: "rst-after-fin",
		About: "CLOSE-WAIT (the peer's FIN ACKed), then a RST with SEQ = the FIN's, one below RCV.NXT: Linux resets the connection (tcp_reset_check) silently; " +
			"the application's read then gets EOF (the FIN came first) and its write EPIPE (tcp_reset's error in CLOSE-WAIT).",
		Listen: true,
		Steps:  established(Send("F."), Expect(1, replyWithin), Send("R", SeqNext(-1)), Watch(quiet), Read(replyWithin), WriteResult(10), Watch(quiet)),
	}, {
		Name:   "ack-unsent-data-burst",
		About:  "Three ACKs of 1000 bytes never sent, 10 ms apart: how many are answered (Linux: one, tcp_invalid_ratelimit 500 ms per connection); watched 300 ms.",
		Listen: true,
		Steps:  established(Send(".", Ack(1001), Times(3, 10*time.Millisecond)), Watch(quiet)),
	}, {
		Name: "user-timeout",
		About: "TCP_USER_TIMEOUT 500 ms (RFC 5482), 100 bytes written, the peer answers nothing: how long the application's read blocks " +
			"before the connection fails (Linux: ETIMEDOUT), then the transmissions of the data with their intervals, to 100 ms; watched 300 ms more (no RST).",
		Listen: true,
		Steps:  established(UserTimeout(500*time.Millisecond), Write(100), ReadTimed(2*time.Second), ExpectIntervals(5, 100*time.Millisecond), Watch(quiet)),
	}, {
		Name: "linger-timeout",
		About: "SO_LINGER 1 s, close; the peer never ACKs the FIN: the FIN, then how long close blocks (Linux: the linger time, then it returns 0 " +
			"and the connection goes on closing in the background).",
		Listen: true,
		Steps:  established(LingerClose(1), Expect(1, replyWithin), ReturnedAfter()),
	}, {
		Name: "nagle-tail",
		About: "Nagle on (TCP_NODELAY off; the other scenarios run with it on, as Go's net sets it), the application writes 3000 bytes: " +
			"is the 104-byte tail held until the full segments are ACKed (RFC 9293 §3.7.4)? Linux applies Minshall's variant (tcp_minshall_check): " +
			"a small segment waits only for an earlier small one. Watched 100 ms, then the peer ACKs what came.",
		Listen: true,
		Steps:  established(NoDelay(false), Write(3000), Watch(100*time.Millisecond), Send("."), Expect(1, replyWithin)),
	}}
}
