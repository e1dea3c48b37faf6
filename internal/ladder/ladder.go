// Package ladder tells the story of one TCP conversation as a ladder
// diagram: each segment with its time, direction, flags, relative sequence
// numbers and the states on each side; TLS messages, state transitions and
// narration in between. It produces Events, which a Sink draws as text
// (Text) or writes as JSON lines (JSON).
package ladder

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"ustack/internal/record"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/tlslite"
)

// Ladder follows one conversation and emits its events. It is safe for
// concurrent use.
type Ladder struct {
	mu        sync.Mutex
	sink      Sink
	start     time.Time
	now       func() time.Time
	server    string // the server's address:port ("198.18.0.2:443")
	cliISN    uint32
	srvISN    uint32
	cliState  string
	srvState  string
	preMaster []byte // the pre-master secret, once the server decrypted it
	// inferClient: the client is the kernel, whose states we cannot see;
	// infer them from the packets (RFC 9293 Figure 5).
	inferClient bool
}

// New starts a ladder for the conversation with server (address:port) on
// the clock now.
func New(sink Sink, now func() time.Time, server string) *Ladder {
	return &Ladder{sink: sink, now: now, start: now(), server: server, cliState: "CLOSED", srvState: "LISTEN"}
}

// InferClient marks the client as the kernel, whose states are inferred
// from its packets.
func (l *Ladder) InferClient() {
	l.mu.Lock()
	l.inferClient = true
	l.mu.Unlock()
}

// emitLocked stamps e and hands it to the sink.
func (l *Ladder) emitLocked(e Event) {
	e.T = millis(l.now().Sub(l.start))
	l.sink.Emit(e)
}

// Elapsed is the time since the ladder started, in milliseconds.
func (l *Ladder) Elapsed() float64 { return millis(l.now().Sub(l.start)) }

// Header emits the two columns' titles.
func (l *Ladder) Header(client, server string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emitLocked(Event{Kind: KindHeader, Client: client, Server: server})
}

// Note emits a narration line.
func (l *Ladder) Note(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emitLocked(Event{Kind: KindNote, Text: fmt.Sprintf(format, args...)})
}

func (l *Ladder) note(format string, args ...any) { l.Note(format, args...) }

func dir(toServer bool) string {
	if toServer {
		return ToServer
	}
	return ToClient
}

// arrowLocked emits an arrow with the states of both sides beside it.
func (l *Ladder) arrowLocked(e Event) {
	e.ClientState, e.ServerState = l.cliState, l.srvState
	l.emitLocked(e)
}

// TLSArrow emits a TLS message from the client (toServer) or to it: msg is
// its name (ClientHello, ChangeCipherSpec, Alert, ApplicationData), label
// its text on the ladder, n the record's length for application data.
func (l *Ladder) TLSArrow(toServer bool, msg, label string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.arrowLocked(Event{Kind: KindTLS, Dir: dir(toServer), Label: label, TLS: &TLS{Message: msg, Bytes: n}})
}

// State records a transition from the trace hook of a ustack side (or of
// a peer a lab builds).
func (l *Ladder) State(e tcp.TraceEvent) { l.state(e, true) }

// Track records a transition in the columns without drawing it.
func (l *Ladder) Track(e tcp.TraceEvent) { l.state(e, false) }

func (l *Ladder) state(e tcp.TraceEvent, draw bool) {
	if e.ID.Local.String() != l.server && e.ID.Remote.String() != l.server {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	side := "client"
	if e.ID.Local.String() == l.server {
		l.srvState, side = e.To.String(), "server"
	} else {
		l.cliState = e.To.String()
	}
	if !draw {
		return
	}
	l.emitLocked(Event{Kind: KindState, Transition: &Transition{Side: side, FromState: e.From.String(), ToState: e.To.String(), Cause: e.Cause}})
}

// ClientState is the client column now.
func (l *Ladder) ClientState() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cliState
}

// SetClientState records an inferred state of a kernel client.
func (l *Ladder) SetClientState(s string) {
	l.mu.Lock()
	l.cliState = s
	l.mu.Unlock()
}

// Restart starts the ladder afresh for another conversation with server,
// with the given states in the columns.
func (l *Ladder) Restart(server, cliState, srvState string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.server, l.start = server, l.now()
	l.cliISN, l.srvISN = 0, 0
	l.cliState, l.srvState = cliState, srvState
}

// FlagLabel renders control bits as the ladder does: "SYN+ACK", PSH left
// out.
func FlagLabel(f uint8) string {
	return strings.ReplaceAll(header.FlagString(f&^header.FlagPSH), "|", "+")
}

// Packet describes one IPv4/TCP packet crossing the server's link, with
// sequence numbers relative to each side's ISN; dropped marks one the lab
// loses on purpose.
func (l *Ladder) Packet(pkt []byte, inbound, dropped bool) {
	p, ok := record.Parse(pkt)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.learnLocked(p, inbound)
	seg := &Segment{Flags: header.FlagString(p.Flags &^ header.FlagPSH), AbsSeq: p.Seq, AbsAck: p.Ack, Len: len(p.Payload), Dropped: dropped}
	if inbound {
		seg.Seq, seg.Ack = p.Seq-l.cliISN, p.Ack-l.srvISN
	} else {
		seg.Seq, seg.Ack = p.Seq-l.srvISN, p.Ack-l.cliISN
	}
	if p.Flags&header.FlagACK == 0 {
		seg.Ack = 0
	}
	l.arrowLocked(Event{Kind: KindSegment, Dir: dir(inbound), Label: segLabel(p.Flags, seg.Seq, seg.Ack, seg.Len), Segment: seg})
}

// Learn takes what a packet tells the ladder (the initial sequence numbers,
// an inferred state) without drawing it, so that what is drawn after a
// quiet stretch is numbered and labelled right.
func (l *Ladder) Learn(pkt []byte, inbound bool) {
	p, ok := record.Parse(pkt)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.learnLocked(p, inbound)
}

func (l *Ladder) learnLocked(p record.Pkt, inbound bool) {
	if inbound && p.Has(header.FlagSYN) {
		l.cliISN = p.Seq
	}
	if !inbound && p.Has(header.FlagSYN) {
		l.srvISN = p.Seq
	}
	if l.inferClient {
		l.inferLocked(inbound, p.Flags)
	}
}

// Inject describes a packet the lab writes into the link itself (an old
// duplicate), with absolute sequence numbers.
func (l *Ladder) Inject(toServer bool, pkt []byte) {
	p, ok := record.Parse(pkt)
	if !ok {
		return
	}
	seg := &Segment{Flags: header.FlagString(p.Flags &^ header.FlagPSH), Seq: p.Seq, Ack: p.Ack, AbsSeq: p.Seq, AbsAck: p.Ack, Len: len(p.Payload), Injected: true}
	if p.Flags&header.FlagACK == 0 {
		seg.Ack, seg.AbsAck = 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.arrowLocked(Event{Kind: KindSegment, Dir: dir(toServer), Label: segLabel(p.Flags, seg.Seq, seg.Ack, seg.Len), Segment: seg})
}

// segLabel is an arrow's text: "SYN+ACK seq=0 ack=1 len=5".
func segLabel(f uint8, seq, ack uint32, n int) string {
	label := FlagLabel(f) + fmt.Sprintf(" seq=%d", seq)
	if f&header.FlagACK != 0 {
		label += fmt.Sprintf(" ack=%d", ack)
	}
	if n > 0 {
		label += fmt.Sprintf(" len=%d", n)
	}
	return label
}

// Observe wraps a server's link so that every packet is drawn on l.
func Observe(ep link.Endpoint, l *Ladder) link.Endpoint { return &observe{Endpoint: ep, l: l} }

// observe wraps the server's link so that every packet is drawn.
type observe struct {
	link.Endpoint
	l *Ladder
}

func (o *observe) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := o.Endpoint.ReadBatch(bufs, sizes, offset)
	for i := 0; i < n; i++ {
		o.l.Packet(bufs[i][offset:offset+sizes[i]], true, false)
	}
	return n, err
}

func (o *observe) WriteBatch(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		o.l.Packet(b[offset:], false, false)
	}
	return o.Endpoint.WriteBatch(bufs, offset)
}

// inferLocked moves the kernel client's state along the diagram of RFC 9293
// Figure 5 from the packets it sends and receives (marked "~" as inferred).
func (l *Ladder) inferLocked(fromClient bool, f uint8) {
	st := l.cliState
	switch {
	case fromClient && f&header.FlagSYN != 0:
		st = "~SYN-SENT"
	case !fromClient && f&header.FlagSYN != 0:
		st = "~ESTABLISHED"
	case f&header.FlagRST != 0:
		st = "~CLOSED"
	case fromClient && f&header.FlagFIN != 0 && st == "~CLOSE-WAIT":
		st = "~LAST-ACK"
	case fromClient && f&header.FlagFIN != 0:
		st = "~FIN-WAIT-1"
	case !fromClient && f&header.FlagFIN != 0 && (st == "~FIN-WAIT-1" || st == "~FIN-WAIT-2"):
		st = "~TIME-WAIT"
	case !fromClient && f&header.FlagFIN != 0:
		st = "~CLOSE-WAIT"
	case !fromClient && st == "~LAST-ACK":
		st = "~CLOSED"
	case !fromClient && st == "~FIN-WAIT-1":
		st = "~FIN-WAIT-2"
	}
	// The arrow is drawn with the state the packet leads to.
	l.cliState = st
}

// ObserveTLS is a tlslite observer for the server's side of the demo.
func (l *Ladder) ObserveTLS(e tlslite.Event) { l.tls(e) }

// tls draws a TLS event seen by the server (tlslite's observer): what the
// server sent goes to the client, what it received came from it.
func (l *Ladder) tls(e tlslite.Event) {
	toServer := !e.Sent()
	switch e := e.(type) {
	case tlslite.HandshakeEvent:
		label := "TLS " + e.Message()
		var detail string
		switch e := e.(type) {
		case tlslite.ClientHelloEvent:
			detail = "client random " + short(e.Random)
		case tlslite.ServerHelloEvent:
			detail = "server random " + short(e.Random) + ", " + tlslite.CipherSuiteName(e.CipherSuite)
		case tlslite.CertificateEvent:
			if len(e.Certificates) > 0 {
				c := e.Certificates[0]
				detail = fmt.Sprintf("%s, RSA public key (%d bits), signed by %s", c.Subject.CommonName, c.PublicKey.(interface{ Size() int }).Size()*8, c.Issuer.CommonName)
			}
		case tlslite.ClientKeyExchangeEvent:
			if len(e.EncryptedPreMaster) > 0 {
				detail = fmt.Sprintf("pre-master secret encrypted with the server's public key (%d bytes) %s", len(e.EncryptedPreMaster), short(e.EncryptedPreMaster))
			}
		case tlslite.FinishedEvent:
			detail = "verify_data " + short(e.VerifyData) + " (encrypted)"
		}
		l.TLSArrow(toServer, e.Message(), label, 0)
		if detail != "" {
			l.note("%s", detail)
		}
	case tlslite.ChangeCipherSpecEvent:
		l.TLSArrow(toServer, "ChangeCipherSpec", "TLS ChangeCipherSpec", 0)
	case tlslite.AlertEvent:
		l.TLSArrow(toServer, "Alert", "TLS alert "+e.Alert.String()+" (encrypted)", 0)
	case tlslite.ApplicationDataEvent:
		what := "encrypted request"
		if e.Sent() {
			what = "encrypted response"
		}
		l.TLSArrow(toServer, "ApplicationData", fmt.Sprintf("TLS %s, %d bytes AES-GCM", what, len(e.Record)), len(e.Record))
	case tlslite.KeysEvent:
		l.mu.Lock()
		if len(e.PreMasterSecret) > 0 {
			l.preMaster = e.PreMasterSecret
		}
		pm := l.preMaster
		l.mu.Unlock()
		l.note("server decrypted the pre-master secret %s with its private key", short(pm))
		l.note("both sides: master secret = PRF(pre-master, client random + server random) = %s", short(e.MasterSecret))
		if e.Keys != nil {
			l.note("session keys from it: client write key %s, server write key %s", short(e.Keys.ClientKey), short(e.Keys.ServerKey))
		}
	}
}

// Short renders the first bytes of b in hex.
func Short(b []byte) string { return short(b) }

// short renders the first bytes of b in hex.
func short(b []byte) string {
	if len(b) > 8 {
		return fmt.Sprintf("%x…", b[:8])
	}
	return fmt.Sprintf("%x", b)
}
