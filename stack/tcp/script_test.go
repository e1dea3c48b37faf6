package tcp

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// The scripted-test helper (docs/design.md, "Tests" 1): feed a segment in, assert the
// exact segment out, in virtual time.

const (
	lISS = seqnum.Value(1000) // our initial sequence number
	rISS = seqnum.Value(5000) // the peer's
)

var (
	testID = ID{
		Local:  netip.MustParseAddrPort("198.18.0.2:80"),
		Remote: netip.MustParseAddrPort("198.18.0.1:40000"),
	}
	// testID6 is testID over IPv6, in the benchmarking range 2001:2::/48
	// (RFC 5180), for the branches that depend on the family (newScriptOn).
	testID6 = ID{
		Local:  netip.MustParseAddrPort("[2001:2::2]:80"),
		Remote: netip.MustParseAddrPort("[2001:2::1]:40000"),
	}
	t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

type script struct {
	t     *testing.T
	c     *Conn
	now   time.Time
	sent  []Segment
	trace []TraceEvent
	n     int             // which script of its test (0 for the first)
	log   strings.Builder // the transcript: every segment in and out, whole, and every transition
}

// goldenSeq numbers the scripts of one test, for tests that run several.
var goldenSeq = map[*testing.T]int{}

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden/*.txt from this run")

// fuzzing reports whether this process is a fuzz worker of go test -fuzz,
// running generated inputs, which have no golden transcripts: only the
// seed and testdata corpus entries, run as plain tests, do.
func fuzzing() bool {
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}

// Send implements Sender: it records a copy of the segment.
func (s *script) Send(_ *Conn, seg *Segment) {
	cp := *seg
	cp.Payload = append([]byte(nil), seg.Payload...)
	s.sent = append(s.sent, cp)
	s.record(">", &cp)
}

// record adds one segment to the transcript in full: flags, seq, ack,
// window, every option (MSS, WS, SACK-permitted, timestamps, each SACK
// block) and the payload bytes (in hex up to 32 bytes, else length and
// SHA-256).
func (s *script) record(dir string, g *Segment) {
	fmt.Fprintf(&s.log, "+%v %s %s seq=%d ack=%d win=%d", s.now.Sub(t0), dir, header.FlagString(g.Flags), uint32(g.Seq), uint32(g.Ack), g.Wnd)
	o := &g.Opts
	ws := -1 // absent
	if o.WS.Present {
		ws = int(o.WS.Shift)
	}
	fmt.Fprintf(&s.log, " mss=%d ws=%d sackok=%v", o.MSS, ws, o.SACKPermit)
	if o.TS {
		fmt.Fprintf(&s.log, " ts=%d/%d", o.TSVal, o.TSEcr)
	}
	for i := 0; i < o.NumSACK; i++ {
		fmt.Fprintf(&s.log, " sack=%d-%d", uint32(o.SACK[i].Start), uint32(o.SACK[i].End))
	}
	if n := len(g.Payload); n <= 32 {
		fmt.Fprintf(&s.log, " data=%x\n", g.Payload)
	} else {
		fmt.Fprintf(&s.log, " len=%d sha256=%x\n", n, sha256.Sum256(g.Payload))
	}
}

// checkGolden compares the test's whole transcript with
// testdata/golden/<test>.txt (written with -update-golden). Every segment
// the TCB emitted is compared whole, including those the test does not
// assert one by one, so that a change of behaviour cannot pass unseen.
func (s *script) checkGolden() {
	if s.t.Failed() || s.t.Skipped() || fuzzing() {
		return
	}
	name := strings.NewReplacer("/", "__", " ", "_").Replace(s.t.Name())
	if s.n > 0 {
		name += fmt.Sprintf(".%d", s.n)
	}
	path := filepath.Join("testdata", "golden", name+".txt")
	got := []byte(s.log.String())
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			s.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatalf("golden transcript: %v (run go test ./stack/tcp -update-golden once to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				s.t.Fatalf("transcript differs from %s at line %d:\n got  %s\n want %s", path, i+1, g, w)
			}
		}
	}
}

func newScript(t *testing.T, cfg Config) *script {
	t.Helper()
	return newScriptOn(t, testID, cfg)
}

// newScriptOn is newScript for a connection with the 4-tuple id (testID6
// for IPv6). Its transcript names id on a first line when it is not
// testID.
func newScriptOn(t *testing.T, id ID, cfg Config) *script {
	t.Helper()
	s := &script{t: t, now: t0, n: goldenSeq[t]}
	if s.n == 0 {
		t.Cleanup(func() { delete(goldenSeq, t) }) // runs after every script's checkGolden
	}
	goldenSeq[t]++
	cfg.StrictTransitions = true
	if cfg.DelayedAck == 0 {
		cfg.DelayedAck = -1 // one ACK per input batch unless a test is about delayed ACKs
	}
	if id != testID {
		fmt.Fprintf(&s.log, "conn %v <-> %v\n", id.Local, id.Remote)
	}
	s.c = NewConn(id, cfg, s, func(e TraceEvent) {
		if !Legal(e.From, e.To) {
			t.Errorf("illegal transition %v -> %v (%s)", e.From, e.To, e.Cause)
		}
		s.trace = append(s.trace, e)
		fmt.Fprintf(&s.log, "+%v %v -> %v (%s)\n", s.now.Sub(t0), e.From, e.To, e.Cause)
	})
	t.Cleanup(s.checkGolden)
	return s
}

// seg builds a segment from the peer with no options.
func seg(flags uint8, seq, ack seqnum.Value, payload ...byte) Segment {
	return Segment{Seq: seq, Ack: ack, Flags: flags, Wnd: 65535, Opts: header.TCPOptions{}, Payload: payload}
}

const (
	SYN = header.FlagSYN
	ACK = header.FlagACK
	FIN = header.FlagFIN
	RST = header.FlagRST
	PSH = header.FlagPSH
)

// in delivers a segment from the peer, then flushes as the stack does at the
// end of an input batch.
func (s *script) in(g Segment) {
	s.t.Helper()
	s.record("<", &g)
	s.c.SegmentArrives(s.now, &g)
	s.c.Flush(s.now)
}

// inBatch delivers several segments as one input batch: one flush at the end.
func (s *script) inBatch(gs ...Segment) {
	for i := range gs {
		s.record("<", &gs[i])
		s.c.SegmentArrives(s.now, &gs[i])
	}
	s.c.Flush(s.now)
}

// out asserts the next emitted segment: flags, seq, ack and payload length
// always; window, MSS, timestamps, SACK blocks and the payload bytes when the
// template sets them. The golden transcript (checkGolden) compares every
// segment whole in any case.
func (s *script) out(want Segment) Segment {
	s.t.Helper()
	if len(s.sent) == 0 {
		s.t.Fatalf("at +%v: no segment sent, want %v", s.now.Sub(t0), &want)
	}
	got := s.sent[0]
	s.sent = s.sent[1:]
	bad := got.Flags != want.Flags || got.Seq != want.Seq || len(got.Payload) != len(want.Payload)
	if want.Flags&ACK != 0 && got.Ack != want.Ack {
		bad = true
	}
	if want.Wnd != 0 && got.Wnd != want.Wnd {
		bad = true
	}
	if want.Opts.MSS != 0 && got.Opts.MSS != want.Opts.MSS {
		bad = true
	}
	if want.Payload != nil && !bytes.Equal(got.Payload, want.Payload) {
		bad = true
	}
	if want.Opts.TS && (!got.Opts.TS || got.Opts.TSVal != want.Opts.TSVal || got.Opts.TSEcr != want.Opts.TSEcr) {
		bad = true
	}
	if want.Opts.NumSACK > 0 && (got.Opts.NumSACK != want.Opts.NumSACK || got.Opts.SACK != want.Opts.SACK) {
		bad = true
	}
	if bad {
		s.t.Fatalf("at +%v: sent %v\n                 want %v", s.now.Sub(t0), &got, &want)
	}
	return got
}

// pathMTU hands the TCB a path MTU of mtu from an ICMP error quoting seq
// (PathMTU), noted in the transcript before what it sends, and returns
// whether it was taken.
func (s *script) pathMTU(seq seqnum.Value, mtu int) bool {
	fmt.Fprintf(&s.log, "+%v < ICMP path MTU %d quoting seq=%d\n", s.now.Sub(t0), mtu, uint32(seq))
	return s.c.PathMTU(s.now, seq, mtu)
}

// none asserts that nothing more was sent.
func (s *script) none() {
	s.t.Helper()
	if len(s.sent) > 0 {
		s.t.Fatalf("at +%v: unexpected segment %v", s.now.Sub(t0), &s.sent[0])
	}
}

// advance moves virtual time forward by d, running every timer that falls
// due on the way, at its own deadline.
func (s *script) advance(d time.Duration) {
	end := s.now.Add(d)
	for {
		next := s.c.NextDeadline()
		if next.IsZero() || next.After(end) {
			break
		}
		s.now = next
		s.c.Tick(s.now)
	}
	s.now = end
}

// at advances to exactly t0+d.
func (s *script) at(d time.Duration) { s.advance(t0.Add(d).Sub(s.now)) }

func (s *script) state(want State) {
	s.t.Helper()
	if got := s.c.State(); got != want {
		s.t.Fatalf("at +%v: state %v, want %v", s.now.Sub(t0), got, want)
	}
}

// passiveOpen drives the TCB through LISTEN → SYN-RECEIVED → ESTABLISHED.
func (s *script) passiveOpen() {
	s.t.Helper()
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	syn := seg(SYN, rISS, 0)
	syn.Opts.MSS = 1460
	s.in(syn)
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+1))
	s.state(Established)
	s.none()
}

// activeOpen drives the TCB through SYN-SENT → ESTABLISHED.
func (s *script) activeOpen() {
	s.t.Helper()
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	synack := seg(SYN|ACK, rISS, lISS+1)
	synack.Opts.MSS = 1460
	s.in(synack)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.state(Established)
	s.none()
}

func (s *script) write(p []byte) {
	s.t.Helper()
	n, err := s.c.Write(s.now, p)
	if err != nil || n != len(p) {
		s.t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
}

func (s *script) read() []byte {
	buf := make([]byte, 1<<20)
	n, _ := s.c.Read(s.now, buf)
	return buf[:n]
}

// transitions renders the trace as "FROM>TO" steps.
func (s *script) transitions() string {
	out := ""
	for _, e := range s.trace {
		out += fmt.Sprintf("%v>%v ", e.From, e.To)
	}
	return out
}

func bytesN(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// bytesAt is bytesN's pattern from offset off: the n bytes a segment
// starting off bytes into a bytesN write carries.
func bytesAt(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(off + i)
	}
	return b
}

func seqnumSize(n int) seqnum.Value { return seqnum.Value(n) }
