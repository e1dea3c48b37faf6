package ladder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ustack/internal/record"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

var (
	cli = netip.MustParseAddrPort("198.18.0.1:40000")
	srv = netip.MustParseAddrPort("198.18.0.2:80")
)

// handshake draws SYN, SYN+ACK and ACK with the server's states.
func handshake(l *Ladder) {
	l.Header("client", "server")
	l.Packet(record.Build(cli, srv, 1000, 0, header.FlagSYN, nil)[link.Headroom:], true, false)
	l.State(tcp.TraceEvent{ID: tcp.ID{Local: srv, Remote: cli}, From: tcp.Listen, To: tcp.SynReceived, Cause: "rcv SYN"})
	l.Packet(record.Build(srv, cli, 5000, 1001, header.FlagSYN|header.FlagACK, nil)[link.Headroom:], false, false)
	l.Packet(record.Build(cli, srv, 1001, 5001, header.FlagACK|header.FlagPSH, []byte("hi"))[link.Headroom:], true, true)
	l.Note("x = %d", 1000)
}

func clock() func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time { t = t.Add(time.Millisecond); return t }
}

// TestText draws the ladder: relative numbers, the states beside the
// arrows, an inferred client state, no colour when off.
func TestText(t *testing.T) {
	var b bytes.Buffer
	l := New(NewText(&b, false), clock(), srv.String())
	l.InferClient()
	handshake(l)
	out := b.String()
	for _, want := range []string{
		"── SYN seq=0 ─", "server: LISTEN →  SYN-RECEIVED",
		"~SYN-SENT", "◀─", " SYN+ACK seq=0 ack=1 ── SYN-RECEIVED",
		"~ESTABLISHED   ── ACK seq=1 ack=1 len=2 ", "   x = 1000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour without color")
	}
	b.Reset()
	New(NewText(&b, true), clock(), srv.String()).Header("c", "s")
	if !strings.Contains(b.String(), Bold+"c"+Reset) {
		t.Errorf("no colour with color: %q", b.String())
	}
}

// TestJSON writes one event per line with the schema's fields.
func TestJSON(t *testing.T) {
	var b bytes.Buffer
	l := New(NewJSON(&b), clock(), srv.String())
	handshake(l)
	l.TLSArrow(true, "ApplicationData", "TLS encrypted request, 40 bytes", 40)
	l.Inject(true, record.Build(cli, srv, 77, 0, header.FlagSYN, nil)[link.Headroom:])
	var ev []Event
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ev = append(ev, e)
	}
	kinds := []string{KindHeader, KindSegment, KindState, KindSegment, KindSegment, KindNote, KindTLS, KindSegment}
	if len(ev) != len(kinds) {
		t.Fatalf("%d events, want %d: %+v", len(ev), len(kinds), ev)
	}
	for i, k := range kinds {
		if ev[i].Kind != k {
			t.Errorf("event %d: kind %q, want %q", i, ev[i].Kind, k)
		}
	}
	syn, sa, data := ev[1], ev[3], ev[4]
	if syn.Dir != ToServer || syn.Segment.Flags != "SYN" || syn.Seq != 0 || syn.AbsSeq != 1000 || syn.ClientState != "CLOSED" || syn.ServerState != "LISTEN" {
		t.Errorf("SYN: %+v %+v", syn, syn.Segment)
	}
	if sa.Dir != ToClient || sa.Segment.Flags != "SYN|ACK" || sa.Ack != 1 || sa.AbsAck != 1001 || sa.ServerState != "SYN-RECEIVED" {
		t.Errorf("SYN+ACK: %+v %+v", sa, sa.Segment)
	}
	if data.Segment.Flags != "ACK" || data.Len != 2 || !data.Dropped || data.Label != "ACK seq=1 ack=1 len=2" {
		t.Errorf("data: %+v %+v", data, data.Segment)
	}
	if st := ev[2].Transition; st == nil || st.Side != "server" || st.FromState != "LISTEN" || st.ToState != "SYN-RECEIVED" || st.Cause != "rcv SYN" {
		t.Errorf("state: %+v", st)
	}
	if tl := ev[6].TLS; tl == nil || tl.Message != "ApplicationData" || tl.Bytes != 40 {
		t.Errorf("tls: %+v", tl)
	}
	if inj := ev[7].Segment; inj == nil || !inj.Injected || inj.Seq != 77 {
		t.Errorf("injected: %+v", inj)
	}
	if ev[0].T >= ev[1].T || ev[5].Text != "x = 1000" {
		t.Errorf("times %v, %v; note %q", ev[0].T, ev[1].T, ev[5].Text)
	}
	if strings.Contains(b.String(), `"ok"`) {
		t.Errorf("a segment event carries claim fields")
	}
}

// TestRecorderTee: a Tee hands each event to every sink, in order, and a
// Recorder keeps them.
func TestRecorderTee(t *testing.T) {
	a, b := NewRecorder(), NewRecorder()
	s := Tee(a, nil, b)
	s.Emit(Event{Kind: KindNote, Text: "one"})
	s.Emit(Event{Kind: KindNote, Text: "two"})
	for _, r := range []*Recorder{a, b} {
		ev := r.Events()
		if len(ev) != 2 || ev[0].Text != "one" || ev[1].Text != "two" {
			t.Errorf("recorded %+v", ev)
		}
	}
	if Tee(a) != Sink(a) {
		t.Error("a Tee of one sink should be that sink")
	}
}
