package tcp

import "time"

// Config holds the tunables of a connection. The zero value of a field means
// its default (docs/design.md "Defaults").
type Config struct {
	// MSS is the maximum segment size this side announces: the largest
	// payload it can receive (MTU - 40 for IPv4 without options).
	MSS int
	// RcvBuf and SndBuf bound the receive and send buffers, in bytes. The
	// receive buffer is also the largest window offered. A connection's
	// receive buffer starts at RcvBufInit and grows, as the application
	// reads, up to RcvBuf (auto-tuning, rcvtune.go; Linux's tcp_rmem[1]
	// and [2]) unless SO_RCVBUF fixes it; the window scale is chosen for
	// RcvBuf.
	RcvBuf, SndBuf int
	RcvBufInit     int

	InitialRTO, MinRTO, MaxRTO time.Duration
	// MaxRetries is how many times a data segment (or FIN) is retransmitted
	// before the connection is aborted with ETIMEDOUT; MaxSynRetries is the
	// same for SYN and SYN-ACK.
	MaxRetries, MaxSynRetries int
	// MaxPersist bounds the persist timer's backoff (default 120 s, Linux's
	// TCP_RTO_MAX for the probe timer).
	MaxPersist time.Duration

	// MSL is the maximum segment lifetime: TIME-WAIT lasts 2*MSL.
	MSL time.Duration
	// FinWait2Timeout bounds FIN-WAIT-2 for a connection the application
	// has fully closed (Linux tcp_fin_timeout). Zero means 2*MSL.
	FinWait2Timeout time.Duration

	// Keepalive (RFC 1122 §4.2.3.6): off unless KeepAlive is set.
	KeepAlive    bool
	KeepIdle     time.Duration
	KeepInterval time.Duration
	KeepCount    int
	NoDelay      bool // disable Nagle (RFC 9293 §3.7.4)
	// DelayedAck is the delayed-ACK timer (RFC 9293 §3.8.6.3): a lone
	// in-order segment is acknowledged after at most this long unless data
	// carries the ACK first. Zero means the default (40 ms); negative turns
	// delayed ACKs off (one ACK per input batch).
	DelayedAck time.Duration

	// RFC 7323 window scaling and timestamps and RFC 2018 SACK are offered
	// unless turned off here.
	NoWindowScale, NoTimestamps, NoSACK bool
	// CC names the congestion control: "cubic" (default) or "newreno".
	CC string
	// MaxOOOSegments bounds the out-of-order queue; zero (the default)
	// bounds it at 1024 segments or two per MSS of the receive buffer,
	// whichever is more (oooLimit).
	MaxOOOSegments int
	// TSOMax, if more than one segment's payload, lets new data leave in
	// units of up to TSOMax payload bytes (a whole number of segments),
	// which the link cuts into segments of the effective MSS
	// (Segment.SegSize): TCP segmentation offload. Retransmissions stay
	// one segment each, and loss detection still works per segment.
	TSOMax int
	// AdoptMin is the smallest in-order payload that the receive buffer
	// takes by adopting the reader's PacketBuf instead of copying
	// (Segment.InPacketBuf; chained after the data it holds, if any); zero
	// means 16 KiB (a super-packet), a negative value never.
	AdoptMin int
	// ChallengeACK, if set, is asked before each challenge ACK (RFC 5961
	// §7): the stack-wide rate limit.
	ChallengeACK func(now time.Time) bool
	// UserTimeout is TCP_USER_TIMEOUT (RFC 5482): when data (or a SYN)
	// stays unacknowledged, or zero-window probes unanswered, this long,
	// the connection ends with ETIMEDOUT, however many retransmissions that
	// took. Zero: the retry counts decide (RFC 9293 §3.8.3 R2).
	UserTimeout time.Duration
	// StrictTransitions makes an illegal state transition panic instead of
	// being counted (Stats.IllegalTransitions): for tests and the
	// simulator, which must never see one.
	StrictTransitions bool
}

// Defaults (docs/design.md).
const (
	DefaultMSS           = 1460
	DefaultRcvBuf        = 6 << 20  // Linux's tcp_rmem[2]: window scale 7
	DefaultRcvBufInit    = 64 << 10 // the window Linux's tcp_rmem[1] (128 KiB of memory) gives
	DefaultSndBuf        = 1 << 20
	DefaultInitialRTO    = time.Second
	DefaultMinRTO        = 200 * time.Millisecond
	DefaultMaxRTO        = 120 * time.Second
	DefaultMaxRetries    = 15
	DefaultMaxSynRetries = 6
	DefaultMaxPersist    = 120 * time.Second
	DefaultMSL           = 30 * time.Second
	DefaultKeepIdle      = 2 * time.Hour
	DefaultKeepInterval  = 75 * time.Second
	DefaultKeepCount     = 10
	DefaultDelayedAck    = 40 * time.Millisecond

	// DefaultPeerMSS is assumed when the peer sends no MSS option
	// (RFC 9293 §3.7.1).
	DefaultPeerMSS = 536
	// DefaultPeerMSSv6 is DefaultPeerMSS over IPv6 (RFC 9293 §3.7.1: the
	// IPv6 minimum MTU, 1280, less 60).
	DefaultPeerMSSv6 = 1220
	maxWindow        = 65535 // the window field; more needs window scaling
	maxWindowShift   = 14    // RFC 7323 §2.3
)

// WithDefaults returns c with zero fields replaced by defaults.
func (c Config) WithDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defi := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defi(&c.MSS, DefaultMSS)
	defi(&c.RcvBuf, DefaultRcvBuf)
	defi(&c.RcvBufInit, DefaultRcvBufInit)
	defi(&c.SndBuf, DefaultSndBuf)
	def(&c.InitialRTO, DefaultInitialRTO)
	def(&c.MinRTO, DefaultMinRTO)
	def(&c.MaxRTO, DefaultMaxRTO)
	defi(&c.MaxRetries, DefaultMaxRetries)
	defi(&c.MaxSynRetries, DefaultMaxSynRetries)
	def(&c.MaxPersist, DefaultMaxPersist)
	def(&c.MSL, DefaultMSL)
	def(&c.FinWait2Timeout, 2*c.MSL)
	def(&c.KeepIdle, DefaultKeepIdle)
	def(&c.KeepInterval, DefaultKeepInterval)
	defi(&c.KeepCount, DefaultKeepCount)
	def(&c.DelayedAck, DefaultDelayedAck)
	return c
}
