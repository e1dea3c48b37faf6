// Package tcp is ustack's TCP: the transmission control block, the RFC 9293
// state machine with segment arrival processed in the order of §3.10.7,
// buffers, timers and retransmission.
//
// It is sans-I/O (docs/design.md "Layers and packages"): no goroutines, locks or clock reads. Every
// method takes the current time; segments leave through the Sender; the
// caller asks NextDeadline and calls Tick when it passes. The caller
// serialises all calls on one Conn.
package tcp

import (
	"syscall"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// Sender takes the segments a connection emits. Payload aliases the
// connection's send buffer and is valid only during the call.
type Sender interface {
	Send(c *Conn, seg *Segment)
}

// TraceEvent describes one state transition.
type TraceEvent struct {
	Time     time.Time
	ID       ID
	From, To State
	Cause    string // "rcv SYN|ACK", "app close", "timer TIME-WAIT", ...
}

// Events are the things a caller may wait for; see TakeEvents.
type Events uint8

// Event bits.
const (
	EvReadable    Events = 1 << iota // data or EOF or an error to read
	EvWritable                       // send buffer space freed
	EvEstablished                    // the handshake completed
	EvClosed                         // the connection reached CLOSED
	EvStateChange                    // any state transition
)

// Stats are per-connection counters.
type Stats struct {
	SegsIn, SegsOut       uint64
	BytesIn, BytesOut     uint64 // payload bytes delivered in order / sent new
	Retransmits           uint64 // segments retransmitted (timeout or fast)
	Timeouts              uint64 // RTO expiries
	DupAcks               uint64
	ChallengeAcks         uint64
	OutOfOrder            uint64 // segments queued out of order
	ACKsCompressed        uint64 // ACKs for out-of-order data held back and not sent (Linux's TCPAckCompressed)
	DSACKsReceived        uint64 // D-SACK blocks received (RFC 2883; Linux's TCPDSACKRecv): each widens RACK's reordering window
	DSACKsSent            uint64 // duplicates reported in a D-SACK block (RFC 2883; Linux's TCPDSACKOldSent + TCPDSACKOfoSent)
	OOODropped            uint64 // out-of-order segments dropped: queue full
	FastRetransmits       uint64 // loss recoveries entered on duplicate ACKs / SACK
	PAWSDropped           uint64 // old-timestamp segments (RFC 7323 §5)
	ChallengeACKsLimited  uint64 // challenge ACKs not sent: rate limit
	TLPProbes             uint64 // tail loss probes (RFC 8985 §7)
	RACKLost              uint64 // segments found lost by RACK (RFC 8985 §6)
	DroppedUnacceptable   uint64 // failed the sequence acceptability test
	KeepaliveProbes       uint64
	ZeroWindowProbes      uint64
	IllegalTransitions    uint64
	BadAcks               uint64 // ACK of unsent data or too old
	InvalidOptionSegments uint64
	OOWACKsLimited        uint64 // ACKs to invalid segments not sent: per-connection rate limit
	ICMPOutOfWindow       uint64 // ICMP errors quoting a sequence number not outstanding (RFC 5927 §4.1)
}

// Add adds o's counts to s (a stack sums its connections' with it).
func (s *Stats) Add(o Stats) {
	s.SegsIn += o.SegsIn
	s.SegsOut += o.SegsOut
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	s.Retransmits += o.Retransmits
	s.Timeouts += o.Timeouts
	s.DupAcks += o.DupAcks
	s.ChallengeAcks += o.ChallengeAcks
	s.OutOfOrder += o.OutOfOrder
	s.ACKsCompressed += o.ACKsCompressed
	s.DSACKsSent += o.DSACKsSent
	s.DSACKsReceived += o.DSACKsReceived
	s.OOODropped += o.OOODropped
	s.FastRetransmits += o.FastRetransmits
	s.PAWSDropped += o.PAWSDropped
	s.ChallengeACKsLimited += o.ChallengeACKsLimited
	s.TLPProbes += o.TLPProbes
	s.RACKLost += o.RACKLost
	s.DroppedUnacceptable += o.DroppedUnacceptable
	s.KeepaliveProbes += o.KeepaliveProbes
	s.ZeroWindowProbes += o.ZeroWindowProbes
	s.IllegalTransitions += o.IllegalTransitions
	s.BadAcks += o.BadAcks
	s.InvalidOptionSegments += o.InvalidOptionSegments
	s.OOWACKsLimited += o.OOWACKsLimited
	s.ICMPOutOfWindow += o.ICMPOutOfWindow
}

// Conn is a transmission control block. It keeps the state machine and
// the order of RFC 9293 §3.10.7 (input.go); the send side (snd.go), the
// receive side (rcv.go) and loss recovery (recovery.go, sack.go, rack.go)
// each own their state, their timers and their counters.
type Conn struct {
	ID ID
	// cfg is shared with the other connections made from the same
	// configuration (a listener's children) and never written: a socket
	// option that changes it gives the connection its own copy first
	// (ownConfig). The options every server sets per connection are the
	// connection's own fields instead: its MSS, Nagle, keepalive on or off.
	cfg   *Config
	out   Sender
	trace func(TraceEvent)

	opt negotiated // window scale, timestamps, SACK
	snd sender     // send sequence space, send buffer, RTO, persist, congestion control
	rcv receiver   // receive sequence space, buffers, window and ACK policy

	// rec is the loss recovery in use: reno until the handshake shows the
	// peer does SACK, then sack.
	rec  lossRecovery
	rb   recoveryBase // the state both share
	reno renoRecovery
	sack sackRecovery

	tm       connTimers // the timers of the connection as a whole
	stats    connStats
	lastOOW  stamp // when an invalid segment was last answered (oowLimited)
	lastRcvd stamp // when an acceptable segment last arrived (keepalive with a user timeout)

	// The small fields last, packed (an idle connection's memory is
	// mostly this struct; a test keeps it within its allocation class).
	announcedMSS int32  // the MSS we announce (Config.MSS, lowered by a known path MTU): ourMSS
	pmtu         int32  // path MTU from ICMP, 0 until one arrives
	keepProbes   int32  // keepalive probes sent without an answer
	errno        uint16 // the sticky error reported to the application (a syscall.Errno; 0: none)
	softErr      uint16 // the last ICMP error (a syscall.Errno) in a synchronized state (icmp.go)
	state        State
	events       Events
	passive      bool // created by a listener: RST in SYN-RECEIVED returns to LISTEN
	rdShut       bool // the application will read no more (Close)
	wrShut       bool // the application will write no more (Close or CloseWrite)
	cork         bool // TCP_CORK (controls.go)
	errTaken     bool // TakeError has returned err
	cfgOwned     bool // cfg is this connection's own copy
	noDelay      bool // TCP_NODELAY (Config.NoDelay)
	keepAlive    bool // SO_KEEPALIVE (Config.KeepAlive)
}

// ourMSS is the MSS we announce.
func (c *Conn) ourMSS() int { return int(c.announcedMSS) }

// connTimers are the deadlines the connection as a whole owns; the sender,
// the receiver and loss recovery own theirs (timers.go lists them all).
type connTimers struct {
	keepalive stamp // RFC 1122 §4.2.3.6
	// closeAt ends the connection: in TIME-WAIT after 2*MSL (RFC 9293
	// §3.10.7.4), in FIN-WAIT-2 once orphaned (FinWait2Timeout). One
	// field for both: entering TIME-WAIT stops every other timer.
	closeAt stamp
}

// connStats are the counters of segment processing as a whole.
type connStats struct {
	segsIn, segsOut uint64
	// Rare events, in 32 bits.
	challengeAcks         uint32
	challengeACKsLimited  uint32
	droppedUnacceptable   uint32
	pawsDropped           uint32
	keepaliveProbes       uint32
	illegalTransitions    uint32
	badAcks               uint32
	invalidOptionSegments uint32
	icmpOutOfWindow       uint32
	oowACKsLimited        uint32
}

// Stats returns the connection's counters, gathered from its parts.
func (c *Conn) Stats() Stats {
	st := Stats{
		SegsIn: c.stats.segsIn, SegsOut: c.stats.segsOut,
		ChallengeAcks: uint64(c.stats.challengeAcks), ChallengeACKsLimited: uint64(c.stats.challengeACKsLimited),
		DroppedUnacceptable: uint64(c.stats.droppedUnacceptable), PAWSDropped: uint64(c.stats.pawsDropped),
		KeepaliveProbes: uint64(c.stats.keepaliveProbes), IllegalTransitions: uint64(c.stats.illegalTransitions),
		BadAcks: uint64(c.stats.badAcks), InvalidOptionSegments: uint64(c.stats.invalidOptionSegments),
		ICMPOutOfWindow: uint64(c.stats.icmpOutOfWindow), OOWACKsLimited: uint64(c.stats.oowACKsLimited),
	}
	c.snd.addStats(&st)
	c.rcv.addStats(&st)
	c.rec.addStats(&st)
	return st
}

// NewConn makes a TCB for id in state CLOSED, with its own copy of cfg.
// Call Connect (active open) or Listen then SegmentArrives with a SYN
// (passive open).
func NewConn(id ID, cfg Config, out Sender, trace func(TraceEvent)) *Conn {
	cfg = cfg.WithDefaults()
	c := NewConnShared(id, &cfg, cfg.MSS, out, trace)
	c.cfgOwned = true
	return c
}

// NewConnShared is NewConn with a configuration shared with other
// connections (so that each does not hold a copy): cfg must come from
// WithDefaults and must not change afterwards. mss replaces cfg.MSS for
// this connection.
func NewConnShared(id ID, cfg *Config, mss int, out Sender, trace func(TraceEvent)) *Conn {
	c := &Conn{ID: id, cfg: cfg, announcedMSS: int32(mss), out: out, trace: trace}
	c.noDelay, c.keepAlive = cfg.NoDelay, cfg.KeepAlive
	c.snd.mss = DefaultPeerMSS
	c.rcv.tune.size = int32(min(cfg.RcvBufInit, cfg.RcvBuf, maxRcvBuf))
	c.snd.rtt.init(cfg)
	c.rb.c = c
	c.reno.recoveryBase, c.sack.recoveryBase = &c.rb, &c.rb
	c.rec = &c.reno
	return c
}

// State is the current state.
func (c *Conn) State() State { return c.state }

// Err is the sticky error, if the connection failed.
func (c *Conn) Err() error {
	if c.errno == 0 {
		return nil
	}
	return syscall.Errno(c.errno)
}

// Config returns the connection's configuration.
func (c *Conn) Config() Config {
	cfg := *c.cfg
	cfg.MSS, cfg.NoDelay, cfg.KeepAlive = c.ourMSS(), c.noDelay, c.keepAlive
	return cfg
}

// ownConfig gives the connection its own copy of its configuration, to be
// changed by a socket option; the shared one stays as it was.
func (c *Conn) ownConfig() *Config {
	if !c.cfgOwned {
		cp := *c.cfg
		c.cfg, c.cfgOwned = &cp, true
	}
	return c.cfg
}

// TakeEvents returns and clears the events since the last call.
func (c *Conn) TakeEvents() Events { e := c.events; c.events = 0; return e }

func (c *Conn) setState(now time.Time, to State, cause string) {
	from := c.state
	if from == to {
		return
	}
	if !Legal(from, to) {
		c.stats.illegalTransitions++
		if c.cfg.StrictTransitions {
			panic("tcp: illegal transition " + from.String() + " -> " + to.String() + " (" + cause + ")")
		}
	}
	c.state = to
	c.events |= EvStateChange
	switch to {
	case Established:
		c.events |= EvEstablished | EvWritable
		c.lastRcvd = stampOf(now) // the handshake's last segment came now
		c.rcvTuneStart(now)
	case Closed:
		c.events |= EvClosed | EvReadable | EvWritable
		c.stopTimers()
		c.snd.buf.release()
		c.rcv.ooo.clear()
	case CloseWait, TimeWait, Closing:
		c.events |= EvReadable
	}
	if c.trace != nil {
		c.trace(TraceEvent{Time: now, ID: c.ID, From: from, To: to, Cause: cause})
	}
}

// Listen is the passive OPEN (RFC 9293 §3.10.1) of a new TCB: it starts
// in LISTEN. The stack makes one such TCB per arriving SYN, so that
// LISTEN→SYN-RECEIVED happens per connection while the listener keeps
// listening. LISTEN is the TCB's initial state, not a transition: no
// trace event, and a TCB that has left CLOSED cannot be put back.
func (c *Conn) Listen(now time.Time) {
	if c.state != Closed || c.rcv.irs != 0 || c.snd.max != 0 {
		return
	}
	c.passive = true
	c.state = Listen
}

// Connect performs an active open (RFC 9293 §3.10.1): choose the ISS, send
// SYN, enter SYN-SENT.
func (c *Conn) Connect(now time.Time, iss seqnum.Value) {
	c.snd.start(iss)
	c.rec.start(iss)
	c.setState(now, SynSent, "app connect")
	c.sendSYN(now)
}

// Write queues application data (RFC 9293 §3.10.2) and sends what the
// windows allow. It returns how many bytes fit in the send buffer.
func (c *Conn) Write(now time.Time, p []byte) (int, error) {
	if err := c.Err(); err != nil {
		return 0, err
	}
	if c.wrShut {
		return 0, syscall.EPIPE
	}
	switch c.state {
	case SynSent, SynReceived, Established, CloseWait:
	default:
		return 0, syscall.ENOTCONN
	}
	n := c.snd.buf.Append(p, c.cfg.SndBuf)
	if c.state.Synchronized() {
		c.output(now)
	}
	return n, nil
}

// SendSpace is how many more bytes Write would accept now.
func (c *Conn) SendSpace() int { return c.cfg.SndBuf - c.snd.buf.Len() }

// Unsent is the number of bytes written but not yet acknowledged.
func (c *Conn) Unsent() int { return c.snd.buf.Len() }

// Read moves received in-order data into p (RFC 9293 §3.10.3). At EOF (the
// peer's FIN and nothing left) it returns 0, true. A read that opens the
// window enough sends a window update.
func (c *Conn) Read(now time.Time, p []byte) (n int, eof bool) {
	n = c.rcv.buf.Read(p)
	// A window update matters only while the peer may still send: not
	// after its FIN (CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT).
	if n > 0 && !c.rcv.finRcvd && c.state.Synchronized() && c.windowUpdateDue() {
		c.rcv.ackNow = true
		c.output(now)
	}
	if n > 0 {
		// After the update: a buffer grown by auto-tuning shows in the
		// next ACK rather than prompting one of its own (Linux opens the
		// window it offers gradually as segments arrive, tcp_grow_window,
		// so its tuning does not either).
		c.rcvSpaceAdjust(now)
	}
	return n, c.rcv.buf.Len() == 0 && c.rcv.finRcvd
}

// Readable is the number of bytes ready to read.
func (c *Conn) Readable() int { return c.rcv.buf.Len() }

// EOF reports whether the peer's FIN has been received and all data read.
func (c *Conn) EOF() bool { return c.rcv.finRcvd && c.rcv.buf.Len() == 0 }

// CloseWrite shuts down the sending direction: a FIN follows the queued
// data (RFC 9293 §3.10.4). Receiving goes on (half-close).
func (c *Conn) CloseWrite(now time.Time) {
	if c.wrShut {
		return
	}
	c.wrShut = true
	switch c.state {
	case Listen, SynSent:
		c.setState(now, Closed, "app close")
		return
	case SynReceived:
		// RFC 9293 §3.10.4: the FIN waits until the handshake completes;
		// the ACK of our SYN then takes us to FIN-WAIT-1.
		c.snd.queueFIN()
		return
	case Established:
		c.snd.queueFIN()
		c.setState(now, FinWait1, "app close")
	case CloseWait:
		c.snd.queueFIN()
		c.setState(now, LastAck, "app close")
	default:
		return
	}
	c.output(now)
}

// Close closes both directions. Unread received data makes it an abort
// with RST (RFC 2525 §2.17, as Linux does); otherwise it is CloseWrite and
// the connection finishes in the background.
func (c *Conn) Close(now time.Time) {
	if c.rdShut {
		return
	}
	c.rdShut = true
	if c.rcv.buf.Len() > 0 && c.state.Synchronized() {
		c.Abort(now, "app close with unread data")
		return
	}
	c.rcv.buf.release()
	c.CloseWrite(now)
	if c.state == FinWait2 {
		c.tm.closeAt = stampOf(now.Add(c.cfg.FinWait2Timeout))
	}
}

// Abort resets the connection (RFC 9293 §3.10.5): an RST goes out in the
// synchronized states and SYN-RECEIVED, and the TCB is CLOSED.
func (c *Conn) Abort(now time.Time, why string) {
	switch c.state {
	case Closed, TimeWait:
		c.setState(now, Closed, why)
		return
	case Listen, SynSent:
	default:
		c.sendActiveRST(now)
	}
	if c.errno == 0 {
		c.errno = uint16(ErrAborted)
	}
	c.setState(now, Closed, why)
}

// fail records the error and closes the connection.
func (c *Conn) fail(now time.Time, err syscall.Errno, cause string) {
	if c.errno == 0 {
		c.errno = uint16(err)
	}
	c.setState(now, Closed, cause)
}

// Info is a snapshot for the CLI and the status page.
type Info struct {
	State            State
	SRTT, RTTVar     time.Duration
	RTO              time.Duration
	Cwnd, Ssthresh   int
	SndWnd, RcvWnd   uint32
	RcvBuf           int // the receive buffer's size now: auto-tuned, or as SO_RCVBUF set it
	SndMSS           int
	Unacked, Unsent  int
	SndUna, SndNxt   seqnum.Value
	RcvNxt, ISS, IRS seqnum.Value
	CC               string
	WindowScale      [2]header.WindowScale // ours, the peer's; not Present when scaling is off
	Timestamps, SACK bool
	// As Linux's TCP_INFO has them: the congestion-control state,
	// consecutive timeouts, bytes SACKed and marked lost, the path MTU
	// (0: the link's), and the user timeout in force.
	CAState                CAState
	Backoff                int
	SackedBytes, LostBytes int
	PMTU                   int
	UserTimeout            time.Duration
	Stats                  Stats
}

// Info returns the connection's current figures.
func (c *Conn) Info() Info {
	i := Info{
		State: c.state, SRTT: c.snd.rtt.srtt, RTTVar: c.snd.rtt.rttvar, RTO: c.snd.rtt.rto,
		SndWnd: c.snd.wnd, RcvWnd: c.rcv.window(), RcvBuf: int(c.rcv.tune.size), SndMSS: int(c.snd.mss),
		Unacked: int(c.snd.una.Size(c.snd.nxt)), Unsent: c.snd.buf.Len(),
		SndUna: c.snd.una, SndNxt: c.snd.nxt, RcvNxt: c.rcv.nxt, ISS: c.snd.iss, IRS: c.rcv.irs,
		Stats: c.Stats(),
	}
	if c.snd.cc != nil {
		i.Cwnd, i.Ssthresh, i.CC = c.snd.cc.Cwnd(), c.snd.cc.Ssthresh(), c.snd.cc.Name()
	}
	if c.opt.ws {
		i.WindowScale = [2]header.WindowScale{header.WS(c.opt.rcvShift), header.WS(c.opt.sndShift)}
	}
	i.Timestamps, i.SACK = c.opt.ts, c.opt.sack
	i.CAState, i.Backoff, i.PMTU, i.UserTimeout = c.caState(), int(c.snd.rtxCount), int(c.pmtu), c.cfg.UserTimeout
	i.SackedBytes, i.LostBytes = c.rec.sackedLost()
	return i
}

// MemoryUsed is the bytes of data buffers the connection holds.
func (c *Conn) MemoryUsed() int { return c.snd.buf.Cap() + c.rcv.buf.Cap() + c.rcv.ooo.bytes() }

// ErrAborted is the error after a local Abort.
var ErrAborted = syscall.ECONNABORTED
