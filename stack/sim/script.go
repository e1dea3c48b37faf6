package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"ustack/stack/counter"
	"ustack/stack/tcp"
)

const (
	// HalfClose: CloseWrite (FIN) once everything is written, then Close
	// once the peer's EOF is read. A side that sends nothing half-closes at
	// once: the receiver shuts its sending side first.
	HalfClose CloseMode = iota
	// CloseWhenDone: Close once everything is written and every byte the
	// peer sends is read, without waiting for the peer's FIN; this side is
	// usually the active closer.
	CloseWhenDone
	// CloseOnEOF: Close only after reading the peer's EOF (passive close).
	CloseOnEOF
)

// CloseMode is how one side of a connection ends it.
type CloseMode uint8

var closeModeNames = [...]string{HalfClose: "half-close", CloseWhenDone: "close-when-done", CloseOnEOF: "close-on-eof"}

func (m CloseMode) String() string { return counter.Name(closeModeNames[:], m, "CloseMode") }

// ConnScript is what the applications do on one connection. Index 0 of the
// arrays is the client (the side that dials), 1 the server.
type ConnScript struct {
	Client       int           // the stack that dials: 0 (A) or 1 (B)
	Start        time.Duration // when the client dials
	Size         [2]int        // bytes the client sends, bytes the server sends
	Close        [2]CloseMode
	CloseDelay   [2]time.Duration // wait this long once a close step is due
	Simultaneous bool             // both Close in the same instant, once both are done
}

// Script is one run: the link, the stacks' TCP settings and the connections.
type Script struct {
	Seed    uint64
	Profile Profile
	MTU     int
	TCP     [2]tcp.Config
	Conns   []ConnScript
	// IPv6 runs the script over IPv6 (2001:2::1 and 2001:2::2) instead of
	// IPv4; a link MTU below IPv6's minimum is raised to 1280 (RFC 8200
	// §5). NewScript leaves it off: the draw of a seed is the same either
	// way.
	IPv6 bool
}

// addr is stack k's address in this script.
func (s Script) addr(k int) netip.Addr {
	if s.IPv6 {
		return addrs6[k]
	}
	return addrs[k]
}

// linkMTU is the MTU of the link the script runs on.
func (s Script) linkMTU() int {
	if s.IPv6 {
		return max(s.MTU, 1280)
	}
	return s.MTU
}

// NewScript draws the script of seed for profile p.
func NewScript(seed uint64, p Profile) Script {
	r := rand.New(rand.NewPCG(seed, 0x73696d))
	s := Script{Seed: seed, Profile: p, MTU: 1500}
	switch r.IntN(8) {
	case 0:
		s.MTU = 576
	case 1:
		s.MTU = 1280
	}
	for k := range s.TCP {
		cfg := tcp.Config{MSL: MSL, FinWait2Timeout: time.Minute}
		// Keepalive finds a half-open connection, as it must in the real
		// world: a listener whose SYN-ACKs are all lost gives up silently
		// (as Linux does), and a client that only waits to read would
		// otherwise wait forever (see halfOpen in run.go).
		cfg.KeepAlive, cfg.KeepIdle, cfg.KeepInterval, cfg.KeepCount = true, 5*time.Minute, 30*time.Second, 3
		switch r.IntN(6) {
		case 0:
			cfg.RcvBuf, cfg.SndBuf = 8<<10, 8<<10
		case 1:
			cfg.RcvBuf, cfg.SndBuf = 64<<10, 32<<10
		}
		cfg.NoSACK = r.IntN(4) == 0
		cfg.NoTimestamps = r.IntN(4) == 0
		cfg.NoWindowScale = r.IntN(8) == 0
		cfg.NoDelay = r.IntN(2) == 0
		if r.IntN(8) == 0 {
			cfg.DelayedAck = -1
		}
		if r.IntN(3) == 0 {
			cfg.CC = "newreno"
		}
		if seed%2 == 0 {
			// Every in-order payload that finds its receive buffer empty
			// is adopted where the reader read it (tcp.PacketBuf), not
			// only super-packets, which the simulated link never makes.
			// It changes no byte on the wire, so the draw stays the same.
			cfg.AdoptMin = 1
		}
		s.TCP[k] = cfg
	}
	n := 1 + r.IntN(4)
	for range n {
		var c ConnScript
		c.Client = r.IntN(2)
		if r.IntN(2) == 0 { // half the connections overlap from the start
			c.Start = time.Duration(r.IntN(2000)) * time.Millisecond
		}
		switch r.IntN(4) { // which side sends
		case 0:
			c.Size[0] = drawSize(r, p.MaxSize)
		case 1:
			c.Size[1] = drawSize(r, p.MaxSize)
		default:
			c.Size[0], c.Size[1] = drawSize(r, p.MaxSize), drawSize(r, p.MaxSize)
		}
		if r.IntN(6) == 0 {
			c.Simultaneous = true
			c.Close = [2]CloseMode{CloseWhenDone, CloseWhenDone}
		} else {
			for k := range c.Close {
				c.Close[k] = CloseMode(r.IntN(3))
				if r.IntN(3) == 0 {
					c.CloseDelay[k] = time.Duration(r.IntN(3000)) * time.Millisecond
				}
			}
			if c.Close == [2]CloseMode{CloseOnEOF, CloseOnEOF} {
				// Someone has to send the first FIN.
				c.Close[r.IntN(2)] = HalfClose
			}
		}
		s.Conns = append(s.Conns, c)
	}
	return s
}

// drawSize is 0 one time in ten, else log-uniform in [1, max]: mostly small
// transfers, a few large ones.
func drawSize(r *rand.Rand, max int) int {
	if r.IntN(10) == 0 {
		return 0
	}
	return int(math.Exp(r.Float64() * math.Log(float64(max))))
}

func (s Script) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d profile %s (%v) mtu %d\n", s.Seed, s.Profile.Name, s.Profile.Spec, s.linkMTU())
	for k, cfg := range s.TCP {
		fmt.Fprintf(&b, "  stack %s %s: rcvbuf %d sndbuf %d sack %v ts %v ws %v nodelay %v delack %v cc %q\n",
			names[k], s.addr(k), cfg.RcvBuf, cfg.SndBuf, !cfg.NoSACK, !cfg.NoTimestamps, !cfg.NoWindowScale,
			cfg.NoDelay, cfg.DelayedAck, cfg.CC)
	}
	for i, c := range s.Conns {
		sim := ""
		if c.Simultaneous {
			sim = ", simultaneous close"
		}
		fmt.Fprintf(&b, "  conn %d: %s dials %s:%d at %v; client sends %d (%v after %v), server sends %d (%v after %v)%s\n",
			i, names[c.Client], names[1-c.Client], basePort+i, c.Start,
			c.Size[0], c.Close[0], c.CloseDelay[0], c.Size[1], c.Close[1], c.CloseDelay[1], sim)
	}
	return b.String()
}
