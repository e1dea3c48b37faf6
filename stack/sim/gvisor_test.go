package sim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"ustack/internal/gvpeer"
	"ustack/internal/waitfor"
	"ustack/stack"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The ustack↔gVisor runs are NOT deterministic and run in real time:
// gvpeer gives no way to pass gVisor a tcpip.Clock, and gVisor's TCP
// processes segments on its own goroutines (tcp dispatcher processors), so
// it cannot be stepped in lockstep with a clock.Virtual. TestSimGVisor
// therefore runs a small set, with the same scripts and profiles as
// TestSim: each seed's first connection, with smaller transfers, short
// TIME-WAITs, and a real-time deadline per run. A failure names the seed
// and profile; the replay is best effort (the link's impairment pattern is
// seeded, the timing is not).

// gvSeeds is the number of seeds per profile of TestSimGVisor.
const gvSeeds = 3

// gvMaxSize caps each direction's bytes in a real-time run.
func gvMaxSize(p Profile) int {
	if p.Spec.Rate > 0 {
		return 48 << 10
	}
	return 192 << 10
}

const (
	// TIME-WAIT of 2 s on both sides: shorter, and a FIN whose ACK was lost
	// is retransmitted after the peer's TIME-WAIT ended and draws an RST.
	gvMSL      = time.Second
	gvTimeWait = 2 * time.Second
	gvDeadline = 45 * time.Second // per run, real time
)

// TestSimGVisor runs ustack against gVisor netstack over Impair(Pipe) in
// real time, gvSeeds seeds per profile, over IPv4 and then over IPv6
// (subtests ipv4 and ipv6; the same scripts with Script.IPv6, as RunIPv6
// runs them). Within a family the runs mostly wait (delays, TIME-WAIT), so
// all of them run at once in their own goroutines rather than as parallel
// subtests (which -parallel would cap at GOMAXPROCS); each is then
// reported as a subtest. Invariants: the SHA-256 and length of each
// direction, CLOSED on both sides (gVisor's view through gvpeer), every
// ustack transition legal and ending cleanly, no TCB left in ustack, and
// the connection of the script's family with that family's MSS.
func TestSimGVisor(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time interop runs: skipped with -short")
	}
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) { testSimGVisor(t, v6) })
	}
}

func testSimGVisor(t *testing.T, v6 bool) {
	type job struct {
		p     Profile
		seed  uint64
		desc  string
		err   error
		took  time.Duration
		ready chan struct{}
	}
	var jobs []*job
	for _, p := range selectedProfiles(t) {
		for i := range gvSeeds {
			seed := uint64(i + 1)
			if *flagSeed != 0 {
				if i > 0 {
					break
				}
				seed = *flagSeed
			}
			j := &job{p: p, seed: seed, ready: make(chan struct{})}
			jobs = append(jobs, j)
			go func() {
				defer close(j.ready)
				start := time.Now()
				s := NewScript(j.seed, j.p)
				s.IPv6 = v6
				j.desc, j.err = runGVisor(s)
				j.took = time.Since(start)
			}()
		}
	}
	for _, j := range jobs {
		<-j.ready
		t.Run(fmt.Sprintf("%s/seed=%d", j.p.Name, j.seed), func(t *testing.T) {
			if *flagV || j.err != nil {
				t.Log(j.desc)
			}
			if j.err != nil {
				t.Errorf("sim: gVisor seed %d profile %s (IPv6 %v) failed: %v; replay (real time, best effort): go test ./stack/sim/ -run TestSimGVisor/%s -sim.seed=%d -sim.profile=%s -sim.v",
					j.seed, j.p.Name, v6, j.err, map[bool]string{false: "ipv4", true: "ipv6"}[v6], j.seed, j.p.Name)
			}
			t.Logf("%v wall", j.took.Round(time.Millisecond))
		})
	}
}

// halfCloser is what both stacks' connections offer.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// gvApp is one application of a real-time run: it writes its bytes, reads
// the peer's, and closes as its CloseMode says.
func gvApp(c halfCloser, seed uint64, role int, send, want int, mode CloseMode) (sent, got [32]byte, n int, err error) {
	sh, rh := sha256.New(), sha256.New()
	var key [32]byte
	copy(key[:], fmt.Sprintf("gv data %d %d", seed, role))
	gen := rand.NewChaCha8(key)
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for left := send; left > 0; {
			k := min(left, len(buf))
			gen.Read(buf[:k])
			sh.Write(buf[:k])
			if _, err := c.Write(buf[:k]); err != nil {
				werr <- fmt.Errorf("write: %w", err)
				return
			}
			left -= k
		}
		if mode == HalfClose {
			if err := c.CloseWrite(); err != nil {
				werr <- fmt.Errorf("CloseWrite: %w", err)
				return
			}
		}
		werr <- nil
	}()
	c.SetReadDeadline(time.Now().Add(gvDeadline))
	buf := make([]byte, 64<<10)
	for {
		if mode == CloseWhenDone && n == want {
			break
		}
		k, rerr := c.Read(buf)
		rh.Write(buf[:k])
		n += k
		if n > want {
			return sent, got, n, fmt.Errorf("read %d bytes, the peer sent %d", n, want)
		}
		if rerr == io.EOF {
			if n != want {
				return sent, got, n, fmt.Errorf("EOF after %d of %d bytes", n, want)
			}
			break
		}
		if rerr != nil {
			return sent, got, n, fmt.Errorf("read after %d of %d bytes: %w", n, want, rerr)
		}
	}
	if err := <-werr; err != nil {
		return sent, got, n, err
	}
	copy(sent[:], sh.Sum(nil))
	copy(got[:], rh.Sum(nil))
	return sent, got, n, c.Close()
}

// runGVisor runs the first connection of script s between ustack (stack
// 0, A) and gVisor (stack 1, B) in real time, on s's addresses (IPv6 with
// s.IPv6) over a Pipe(1500) whatever s.MTU. It returns a description of
// the run and the first broken invariant.
func runGVisor(s Script) (string, error) {
	seed, p := s.Seed, s.Profile
	sc := s.Conns[0]
	for k := range sc.Size {
		sc.Size[k] = min(sc.Size[k], gvMaxSize(p))
	}
	if sc.Simultaneous {
		sc.Close = [2]CloseMode{CloseWhenDone, CloseWhenDone}
	}
	var log strings.Builder
	fmt.Fprintf(&log, "seed %d profile %s (%v) IPv6 %v: %s dials; client sends %d (%v), server sends %d (%v)\n",
		seed, p.Name, p.Spec, s.IPv6, [2]string{"ustack", "gVisor"}[sc.Client], sc.Size[0], sc.Close[0], sc.Size[1], sc.Close[1])

	const mtu = 1500
	pa, pb := link.Pipe(mtu)
	ea := link.Impair(pa, link.ImpairConfig{Out: p.Spec, Seed: int64(seed * 2)})
	eb := link.Impair(pb, link.ImpairConfig{Out: p.Spec, Seed: int64(seed*2 + 1)})
	var mu sync.Mutex
	var events []Event
	epoch := time.Now()
	us, err := stack.New(ea, stack.Options{
		Addr: s.addr(0),
		TCP:  tcp.Config{MSL: gvMSL, FinWait2Timeout: gvDeadline},
		Trace: func(ev tcp.TraceEvent) {
			mu.Lock()
			events = append(events, Event{Stack: 0, At: ev.Time.Sub(epoch), TraceEvent: ev})
			mu.Unlock()
		},
	})
	if err != nil {
		return log.String(), err
	}
	defer us.Close()
	gv, err := gvpeer.New(eb, s.addr(1), gvpeer.Options{SACK: true, CongestionControl: "cubic", TimeWait: gvTimeWait, FinWait2: gvDeadline})
	if err != nil {
		return log.String(), err
	}
	defer gv.Close()

	const port = basePort
	ctx, cancel := context.WithTimeout(context.Background(), gvDeadline)
	defer cancel()
	var uc *stack.Conn
	var gc *gvpeer.Conn
	if sc.Client == 0 {
		l, err := gv.Listen(port)
		if err != nil {
			return log.String(), err
		}
		defer l.Close()
		acc := make(chan *gvpeer.Conn, 1)
		go func() { c, _ := l.AcceptGV(); acc <- c }()
		if uc, err = us.DialTCP(ctx, netip.AddrPortFrom(s.addr(1), port)); err != nil {
			return log.String(), err
		}
		select {
		case gc = <-acc:
		case <-ctx.Done():
			return log.String(), errors.New("gVisor accepted nothing")
		}
	} else {
		l, err := us.ListenTCP(port)
		if err != nil {
			return log.String(), err
		}
		defer l.Close()
		acc := make(chan *stack.Conn, 1)
		go func() { c, _ := l.AcceptTCP(); acc <- c }()
		if gc, err = gv.Dial(ctx, netip.AddrPortFrom(s.addr(0), port)); err != nil {
			return log.String(), err
		}
		select {
		case uc = <-acc:
		case <-ctx.Done():
			return log.String(), errors.New("ustack accepted nothing")
		}
	}
	if uc == nil || gc == nil {
		return log.String(), errors.New("no connection")
	}
	// The connection is of the script's family, and ustack's send MSS
	// (the lesser of the two ends' offers) is that family's: the MTU less
	// the fixed IP and TCP headers, 40 bytes over IPv4 and 60 over IPv6
	// (RFC 8200 §8.3).
	hdrs := 40
	if s.IPv6 {
		hdrs = 60
	}
	if id := uc.ID(); id.Local.Addr() != s.addr(0) || id.Remote.Addr() != s.addr(1) {
		return log.String(), fmt.Errorf("ustack's connection is %v, want %v to %v", id, s.addr(0), s.addr(1))
	}
	if mss := uc.Info().SndMSS; mss != mtu-hdrs {
		return log.String(), fmt.Errorf("ustack's send MSS %d, want %d (IPv6 %v)", mss, mtu-hdrs, s.IPv6)
	}
	// Role r of the script runs on stack r^Client: ustack is role Client.
	conns := [2]halfCloser{uc, gc}
	type out struct {
		sent, got [32]byte
		n         int
		err       error
	}
	res := make([]out, 2)
	var wg sync.WaitGroup
	for role := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &res[role]
			o.sent, o.got, o.n, o.err = gvApp(conns[role^sc.Client], seed, role, sc.Size[role], sc.Size[1-role], sc.Close[role])
		}()
	}
	wg.Wait()
	for role := range 2 {
		if res[role].err != nil {
			return log.String(), fmt.Errorf("%s (%s): %w", roleName(role), [2]string{"ustack", "gVisor"}[role^sc.Client], res[role].err)
		}
		if res[role].sent != res[1-role].got {
			return log.String(), fmt.Errorf("%s's bytes arrived altered: sha256 %x sent, %x read", roleName(role), res[role].sent[:8], res[1-role].got[:8])
		}
	}
	// Both reach CLOSED. gVisor reports ERROR instead when an RST ended its
	// TIME-WAIT, CLOSING or LAST-ACK: allowed when ustack's TCB had ended
	// cleanly and it answered a late segment (a duplicated final ACK, a FIN
	// retransmitted after a lost ACK) from its closed port.
	var werr error
	var gs string
	closed := waitfor.Within(gvDeadline, func() bool {
		gs = gc.State()
		return uc.State() == tcp.Closed && us.Stats().TCPConns == 0 && (gs == "CLOSED" || gs == "ERROR")
	})
	switch {
	case !closed:
		werr = fmt.Errorf("not CLOSED within %v: ustack %v (%s), gVisor %s, ustack TCBs %d",
			gvDeadline, uc.State(), infoString(uc), gc.State(), us.Stats().TCPConns)
	case gs == "ERROR" && us.Stats().TCPResetsSent == 0:
		werr = errors.New("gVisor's connection failed (state ERROR) and ustack sent no RST")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range events {
		fmt.Fprintf(&log, "  %v\n", e)
	}
	fmt.Fprintf(&log, "  gVisor %s; ustack RSTs sent %d\n", gc.State(), us.Stats().TCPResetsSent)
	if werr != nil {
		return log.String(), werr
	}
	// ustack received the connection through the script's IP layer, and
	// nothing through the other.
	st := us.Stats()
	used, unused := st.IP["delivered"], st.IP6["received"]
	if s.IPv6 {
		used, unused = st.IP6["delivered"], st.IP["received"]
	}
	if used == 0 || unused != 0 {
		return log.String(), fmt.Errorf("not over the script's family (IPv6 %v): delivered %d by that IP layer, %d received by the other", s.IPv6, used, unused)
	}
	if err := checkPath(events); err != nil {
		return log.String(), err
	}
	return log.String(), nil
}

// checkPath checks one ustack TCB's trace in a real-time run: legal edges,
// one unbroken path, CLOSED at the end through LAST-ACK or TIME-WAIT (an
// RST there is allowed: the gVisor peer has closed).
func checkPath(p []Event) error {
	if len(p) == 0 {
		return errors.New("no transitions traced")
	}
	for i, e := range p {
		if !tcp.Legal(e.From, e.To) {
			return fmt.Errorf("illegal transition: %v", e)
		}
		if i > 0 && e.From != p[i-1].To {
			return fmt.Errorf("broken path: %v then %v", p[i-1], e)
		}
		if e.ID != p[0].ID {
			return fmt.Errorf("a second TCB: %v", e)
		}
	}
	last := p[len(p)-1]
	if last.To != tcp.Closed || (last.From != tcp.LastAck && last.From != tcp.TimeWait) {
		return fmt.Errorf("connection aborted: %v", last)
	}
	return nil
}
