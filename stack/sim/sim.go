// Package sim is ustack's deterministic simulator (docs/design.md, "Tests" 2): two
// stacks in Manual mode on one clock.Virtual, joined by a link.Pipe whose two
// ends each impair their Out direction (link.Impair), run a random script of
// transfers and closes chosen by a seed. Everything (ISNs, ports, the
// impairments, the script) derives from the seed, and nothing runs in real
// time or in another goroutine, so a seed replays exactly.
//
// A run checks its invariants as it goes and at the end:
//   - every byte arrives once and in order: the SHA-256 and length of what
//     each side wrote equal those of what the other read, and EOF comes only
//     after the last byte;
//   - every connection reaches CLOSED, through LAST-ACK (on the ACK of its
//     FIN) or TIME-WAIT (after 2*MSL), within CloseBound of virtual time
//     after the application closed it, and the whole run ends within Limit;
//     no connection is reset or times out. The one exception is an RST in
//     LAST-ACK or TIME-WAIT sent by a peer whose TCB was CLOSED already:
//     a duplicated final ACK reaching a closed port (RFC 9293 §3.10.7.1)
//     kills the TIME-WAIT that sent it (RFC 1337's hazard), and a final ACK
//     lost until after the peer's TIME-WAIT ends the LAST-ACK with an RST.
//     Those are counted in Result.RSTEndings. And a connection the server
//     never accepted because every SYN-ACK was lost is half-open: keepalive
//     resets the client (Result.HalfOpen);
//   - every state transition is an edge that tcp.Legal allows, and each
//     connection's trace is one unbroken path;
//   - both stacks have no TCB left (Stats().TCPConns == 0);
//   - nothing panics.
//
// The tests of this package run many seeds per profile (see sim_test.go);
// a failure prints the one command that replays it.
package sim

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"ustack/stack"
	"ustack/stack/clock"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// Profile is a named impairment, applied to both directions of the link.
type Profile struct {
	Name string
	Spec link.Spec
	// MaxSize bounds the bytes one side sends on one connection, so that
	// the slow and lossy profiles keep the suite fast.
	MaxSize int
}

// Profiles are the link conditions of the issue, in the order the tests run
// them.
var Profiles = []Profile{
	{Name: "clean", MaxSize: 4 << 20},
	{Name: "loss1", Spec: link.Spec{Loss: 0.01}, MaxSize: 2 << 20},
	{Name: "loss10", Spec: link.Spec{Loss: 0.10}, MaxSize: 512 << 10},
	{Name: "reorder5", Spec: link.Spec{Reorder: 0.05}, MaxSize: 2 << 20},
	{Name: "dup5", Spec: link.Spec{Dup: 0.05}, MaxSize: 2 << 20},
	{Name: "corrupt1", Spec: link.Spec{Corrupt: 0.01}, MaxSize: 2 << 20},
	{Name: "slow", Spec: link.Spec{Rate: 10_000_000, Delay: 50 * time.Millisecond}, MaxSize: 1 << 20},
	{Name: "all", Spec: link.Spec{
		Loss: 0.10, Reorder: 0.05, Dup: 0.05, Corrupt: 0.01,
		Rate: 10_000_000, Delay: 50 * time.Millisecond,
	}, MaxSize: 256 << 10},
}

// ProfileByName finds a profile of Profiles.
func ProfileByName(name string) (Profile, bool) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// Bounds of a run, in virtual time.
const (
	// Limit bounds a whole run. Virtual time is free; under 10% loss a
	// transfer with small windows and no SACK can crawl for minutes with
	// its RTO at the 120 s cap, which is slow but not wrong.
	Limit = 30 * time.Minute
	// CloseBound bounds the time from the end of a TCB's data phase (its
	// application closed it and the peer application read its last byte)
	// to CLOSED: 2*MSL of TIME-WAIT plus four retransmissions of a FIN or
	// final ACK at the maximum RTO.
	CloseBound = 2*MSL + 4*tcp.DefaultMaxRTO
	// MSL of every simulated connection. Virtual time costs nothing, so it
	// is the default (TIME-WAIT lasts 60 s, as on Linux): a shorter one
	// lets TIME-WAIT end before the peer's backed-off retransmission of
	// its FIN, which then ends LAST-ACK with an RST.
	MSL = tcp.DefaultMSL
	// maxSpins bounds the loop iterations at one instant of virtual time:
	// more means packets ping-pong without time passing (a livelock).
	maxSpins = 1_000_000
)

var (
	addrs  = [2]netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")}
	addrs6 = [2]netip.Addr{netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2")}
	names  = [2]string{"A", "B"}
)

// basePort is the listening port of connection 0; connection i listens on
// basePort+i on its server's stack, so that accepts match scripts.
const basePort = 1000

// Event is one state transition of one stack.
type Event struct {
	Stack int           // 0 (A) or 1 (B)
	At    time.Duration // virtual time since the start of the run
	tcp.TraceEvent
}

func (e Event) String() string {
	return fmt.Sprintf("%12v %s %v %v -> %v (%s)", e.At, names[e.Stack], e.ID, e.From, e.To, e.Cause)
}

// Result is the outcome of a run.
type Result struct {
	Script Script
	Events []Event
	End    time.Duration    // virtual time at the end
	Stats  [2]stack.Stats   // of both stacks at the end
	Link   [2]link.DirStats // Out impairments of each end
	Err    error            // the first broken invariant, or nil
	Log    []string         // notes for -sim.v
	Spins  int              // loop iterations, a measure of work
	// RSTEndings counts TCBs that ended by an RST from a peer already
	// CLOSED (see the package comment).
	RSTEndings int
	// HalfOpen counts connections the server never accepted: every SYN-ACK
	// was lost, and keepalive reset the client (run.go halfOpen).
	HalfOpen int
	// DataDone is, per connection in the order they finished, the virtual
	// time at which both applications had read every byte the other sent.
	DataDone []time.Duration
}

// Fingerprint is a digest of everything observable in a run: identical for
// two runs of one seed if the simulation is deterministic.
func (r *Result) Fingerprint() string {
	var b strings.Builder
	for _, e := range r.Events {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	for k, st := range r.Stats {
		fmt.Fprintf(&b, "%s segs in %d out %d rtx %d est %d\n", names[k], st.TCPSegsIn, st.TCPSegsOut, st.TCPRetransmits, st.TCPEstablished)
	}
	fmt.Fprintf(&b, "end %v spins %d err %v\n", r.End, r.Spins, r.Err)
	return b.String()
}

// Run runs seed on profile p and checks every invariant. It never panics:
// a panic inside the stacks is the run's error.
func Run(seed uint64, p Profile) *Result {
	return RunScript(NewScript(seed, p))
}

// RunIPv6 is Run over IPv6: the same script, on the stacks' IPv6
// addresses (Script.IPv6).
func RunIPv6(seed uint64, p Profile) *Result {
	s := NewScript(seed, p)
	s.IPv6 = true
	return RunScript(s)
}

// RunScript runs a script.
func RunScript(s Script) (res *Result) {
	res = &Result{Script: s}
	r := &run{Script: s, res: res, v: clock.NewVirtual()}
	defer func() {
		if x := recover(); x != nil {
			res.Err = fmt.Errorf("panic at %v: %v\n%s", r.since(), x, debug.Stack())
		}
	}()
	res.Err = r.run()
	res.End = r.since()
	for k, w := range r.st {
		if w != nil {
			res.Stats[k] = w.Stats()
			res.Link[k] = r.ends[k].Stats().Out
			w.Close()
		}
	}
	return res
}
