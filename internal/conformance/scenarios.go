package conformance

import "time"

// Observation windows of the scripts. Where silence is the outcome that
// matters, the scenario watches for a fixed window and says so.
const (
	replyWithin = 500 * time.Millisecond // a reply expected at once (or after a delayed-ACK timer)
	quiet       = 300 * time.Millisecond // a fixed window in which silence is a possible outcome
)

// established is the common start: the peer opens with every option, the
// application accepts.
func established(steps ...Step) []Step {
	return append([]Step{Handshake(AllOpts), Accept()}, steps...)
}

// withFreshWindow sends one byte and records the ACK, so that the
// target's RCV.NXT and RCV.WND are known exactly before a probe at the
// window's edge.
func withFreshWindow(steps ...Step) []Step {
	return established(append([]Step{Send("P.", Data(1)), Expect(1, replyWithin)}, steps...)...)
}

// Scenarios lists every scenario, in the order of the report.
func Scenarios() []Scenario {
	var all []Scenario
	for _, part := range [][]Scenario{openScenarios(), establishedScenarios(), windowScenarios(), closeScenarios(),
		icmpScenarios(), errorScenarios()} {
		all = append(all, part...)
	}
	return all
}

func openScenarios() []Scenario {
	noWS := SynOpts{MSS: MTU - 40, WS: -1, SACK: true, TS: true}
	return []Scenario{{
		Name:   "passive-open-options",
		About:  "SYN with MSS, SACK-permitted, timestamps and window scale to a listener: the SYN-ACK's options; nothing more after the final ACK.",
		Listen: true,
		Steps:  established(Watch(quiet)),
	}, {
		Name:   "passive-open-no-options",
		About:  "SYN without options: the SYN-ACK offers only what needs no agreement (MSS).",
		Listen: true,
		Steps:  []Step{Handshake(NoOpts), Accept()},
	}, {
		Name:  "active-open",
		About: "The application connects: the SYN's options, the ACK of a SYN-ACK with every option, the connect result.",
		Steps: []Step{Dial(), Expect(1, time.Second), Send("S.", Opts(AllOpts)), Expect(1, replyWithin), Dialed()},
	}, {
		Name:  "active-open-no-ws",
		About: "The peer's SYN-ACK leaves out window scaling (RFC 7323 §2.2: then neither side scales).",
		Steps: []Step{Dial(), Expect(1, time.Second), Send("S.", Opts(noWS)), Expect(1, replyWithin), Dialed()},
	}, {
		Name:  "closed-port-syn",
		About: "SYN to a port nobody listens on: RST|ACK with SEQ=0, ACK=SEG.SEQ+1 (RFC 9293 §3.10.7.1).",
		Steps: []Step{ToPort(ClosedPort), Send("S"), Expect(1, replyWithin)},
	}, {
		Name:  "closed-port-ack",
		About: "ACK (ack=1000) to a closed port: RST with SEQ=SEG.ACK and no ACK bit (RFC 9293 §3.10.7.1).",
		Steps: []Step{ToPort(ClosedPort), Send(".", Ack(1000)), Expect(1, replyWithin)},
	}, {
		Name:  "closed-port-data-no-ack",
		About: "A data segment without ACK to a closed port: RST|ACK, ACK=SEG.SEQ+SEG.LEN.",
		Steps: []Step{ToPort(ClosedPort), Send("P", Data(10)), Expect(1, replyWithin)},
	}, {
		Name: "accept-queue-overflow",
		About: "Backlog 1, nothing accepted: flow 0 completes its handshake; flows 1 and 2 send SYNs, then their final ACKs. " +
			"Linux lets the accept queue hold backlog+1, so flow 2's ACK meets a full queue and is dropped (tcp_abort_on_overflow=0: no RST); " +
			"flow 2 is then watched 1.2 s for a retransmitted SYN-ACK.",
		Config: TargetConfig{Backlog: 1},
		Listen: true,
		Steps: []Step{Handshake(AllOpts), Flow(1), Send("S"), Expect(1, quiet), Flow(2), Send("S"), Expect(1, quiet),
			Flow(1), Send("."), Watch(quiet), Flow(2), Send("."), Watch(1200 * time.Millisecond)},
	}}
}

func establishedScenarios() []Scenario {
	return []Scenario{{
		Name:   "data-ack",
		About:  "100 bytes in: ACKed; the application writes 100: one PSH segment.",
		Listen: true,
		Steps:  established(Send("P.", Data(100)), Expect(1, replyWithin), Write(100), Expect(1, replyWithin), Send("."), Watch(quiet)),
	}, {
		Name:  "data-ack-active",
		About: "data-ack on a connection the application opened: 100 bytes in are ACKed, 100 written go out in one PSH segment.",
		Steps: []Step{Dial(), Expect(1, time.Second), Send("S.", Opts(AllOpts)), Expect(1, replyWithin), Dialed(),
			Send("P.", Data(100)), Expect(1, replyWithin), Write(100), Expect(1, replyWithin)},
	}, {
		Name:   "delayed-ack",
		About:  "Three lone 100-byte segments, each after the previous ACK: how soon each is ACKed (now < 25 ms, delayed < 250 ms). Linux starts a connection in quick-ACK mode.",
		Listen: true,
		Steps: established(Send("P.", Data(100)), ExpectTimed(1, replyWithin), Send("P.", Data(100)), ExpectTimed(1, replyWithin),
			Send("P.", Data(100)), ExpectTimed(1, replyWithin)),
	}, {
		Name:   "oow-ack-burst",
		About:  "Ten pure ACKs with SEQ 2^30 beyond the window, 10 ms apart; replies counted over the burst and 300 ms after. Linux answers one per 500 ms per connection (tcp_invalid_ratelimit).",
		Listen: true,
		Steps:  established(Send(".", SeqNext(1<<30), Times(10, 10*time.Millisecond)), Watch(quiet)),
	}, {
		Name:   "ack-unsent-data",
		About:  "An ACK acknowledging 1000 bytes never sent (RFC 9293 §3.10.7.4: send an ACK and drop; RFC 5961 §5.2: a challenge ACK); watched 300 ms.",
		Listen: true,
		Steps:  established(Send(".", Ack(1001)), Watch(quiet)),
	}, {
		Name:   "syn-in-established",
		About:  "Three SYNs 2^20 beyond RCV.NXT, 20 ms apart, in ESTABLISHED: challenge ACK (RFC 5961 §4), rate limited; watched 300 ms.",
		Listen: true,
		Steps:  established(Send("S", SeqNext(1<<20), Times(3, 20*time.Millisecond)), Watch(quiet)),
	}, {
		Name:   "rst-in-window",
		About:  "RST at RCV.NXT+1: challenge ACK (RFC 5961 §3.2), and the connection lives on (10 bytes are ACKed).",
		Listen: true,
		Steps:  established(Send("R", SeqNext(1)), Watch(quiet), Send("P.", Data(10)), Expect(1, replyWithin)),
	}, {
		Name:   "rst-exact",
		About:  "RST at exactly RCV.NXT: the connection is reset silently; 10 more bytes get a RST.",
		Listen: true,
		Steps:  established(Send("R"), Watch(quiet), Send("P.", Data(10)), Expect(1, replyWithin)),
	}, {
		Name:   "keepalive",
		About:  "Keepalive with 1 s idle and interval: the probe's format (Linux: SEQ=SND.NXT-1, no data).",
		Listen: true,
		Steps:  established(KeepAlive(time.Second, time.Second, 3), ExpectTimed(1, 2500*time.Millisecond)),
	}}
}

// windowScenarios probe the edges of the windows.
func windowScenarios() []Scenario {
	return []Scenario{{
		Name:   "ack-at-right-edge",
		About:  "Pure ACK with SEQ = RCV.NXT+RCV.WND (just outside RFC 9293's acceptability test for an empty segment). Linux accepts it silently (tcp_sequence: not after the edge); watched 300 ms.",
		Listen: true,
		Steps:  withFreshWindow(Send(".", AtEdge(0)), Watch(quiet)),
	}, {
		Name:   "fin-at-right-edge",
		About:  "FIN with SEQ = RCV.NXT+RCV.WND: it passes Linux's sequence test but its FIN lies beyond the window, and Linux ACKs at once (tcp_data_queue, out of window); watched 300 ms.",
		Listen: true,
		Steps:  withFreshWindow(Send("F.", AtEdge(0)), Watch(quiet)),
	}, {
		Name:   "data-beyond-window",
		About:  "100 bytes starting at RCV.NXT+RCV.WND: unacceptable, answered with an ACK (RFC 9293 §3.10.7.4); watched 300 ms.",
		Listen: true,
		Steps:  withFreshWindow(Send("P.", AtEdge(0), Data(100)), Watch(quiet)),
	}, {
		Name:   "zero-window-probe",
		About:  "The peer announces window 0, the application writes 100 bytes: what the stack sends after the persist timeout (Linux: a zero-length ACK with SEQ=SND.UNA-1); two probes awaited for 1.5 s.",
		Listen: true,
		Steps:  established(Send(".", Win(0)), Write(100), Expect(2, 1500*time.Millisecond)),
	}, {
		Name:   "psh-window-limited",
		About:  "Window 500 without scaling, the application writes 1000 bytes: the first, window-limited segment (is PSH set?), then the rest after the ACK.",
		Listen: true,
		Steps: []Step{Send("S", Opts(SynOpts{MSS: MTU - 40, WS: -1, SACK: true, TS: true}), Win(500)), Expect(1, time.Second), Send("."), Accept(),
			Write(1000), Expect(1, 1500*time.Millisecond), Send("."), Expect(1, replyWithin), Send(".")},
	}}
}

func closeScenarios() []Scenario {
	return []Scenario{{
		Name:   "close-unread-data",
		About:  "100 bytes arrive unread, the application closes: RST|ACK with SEQ=SND.NXT, ACK=RCV.NXT (RFC 2525 §2.17), no FIN.",
		Listen: true,
		Steps:  established(Send("P.", Data(100)), Expect(1, replyWithin), Close(), Expect(1, replyWithin)),
	}, {
		Name:   "linger0",
		About:  "SO_LINGER 0 then close: an abortive close, RST|ACK (not offered where the connection has no SetLinger).",
		Listen: true,
		Steps:  established(Linger0(), Expect(1, replyWithin)),
	}, {
		Name:   "listener-close-unaccepted",
		About:  "A handshake completes, nobody accepts, the listener closes: what the queued connection gets.",
		Listen: true,
		Steps:  []Step{Handshake(AllOpts), Watch(100 * time.Millisecond), CloseListener(), Expect(1, replyWithin)},
	}, {
		Name:   "passive-close",
		About:  "The peer sends FIN: ACKed; the application closes: FIN; the peer's last ACK: nothing more.",
		Listen: true,
		Steps:  established(Send("F."), Expect(1, replyWithin), Close(), Expect(1, replyWithin), Send("."), Watch(quiet)),
	}, {
		Name:   "time-wait-fin-retransmit",
		About:  "The application closes first; the peer ACKs and sends FIN (TIME-WAIT), then sends the FIN again: ACKed again (RFC 9293 §3.10.7.4, TIME-WAIT).",
		Listen: true,
		Steps: established(Close(), Expect(1, replyWithin), Send("F."), Expect(1, replyWithin),
			Send("F.", SeqNext(-1)), Expect(1, replyWithin)),
	}, {
		Name:   "half-close",
		About:  "The application shuts down its sending side: FIN; data from the peer is still ACKed.",
		Listen: true,
		Steps:  established(Shutdown(), Expect(1, replyWithin), Send("P.", Data(50)), Expect(1, replyWithin)),
	}}
}
