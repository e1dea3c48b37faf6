package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/tlslite"
)

// ladder prints the story of one conversation as a ladder diagram: each
// segment with its time, direction, flags, relative sequence numbers and the
// states on each side; TLS messages and state transitions in between.
type ladder struct {
	mu        sync.Mutex
	w         io.Writer
	color     bool
	start     time.Time
	now       func() time.Time
	server    string // the server's address:port ("198.18.0.2:443")
	cliISN    uint32
	srvISN    uint32
	haveCli   bool
	haveSrv   bool
	cliState  string
	srvState  string
	width     int
	preMaster []byte // the pre-master secret, once the server decrypted it
	// inferClient: the client is the kernel, whose states we cannot see;
	// infer them from the packets (RFC 9293 Figure 5).
	inferClient bool
}

const (
	cReset  = "\x1b[0m"
	cBlue   = "\x1b[34m"
	cGreen  = "\x1b[32m"
	cYellow = "\x1b[33m"
	cDim    = "\x1b[2m"
	cBold   = "\x1b[1m"
	cMag    = "\x1b[35m"
)

func newLadder(w io.Writer, color bool, now func() time.Time, server string) *ladder {
	return &ladder{w: w, color: color, now: now, start: now(), server: server, cliState: "CLOSED", srvState: "LISTEN", width: 46}
}

func (l *ladder) paint(c, s string) string {
	if !l.color {
		return s
	}
	return c + s + cReset
}

func (l *ladder) stamp() string {
	return fmt.Sprintf("%8.3fms", float64(l.now().Sub(l.start))/float64(time.Millisecond))
}

// header prints the two columns' titles.
func (l *ladder) header(client, server string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%10s  %-16s %-*s %s\n", "time", l.paint(cBold, client), l.width, "", l.paint(cBold, server))
}

// note prints a narration line.
func (l *ladder) note(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s  %s\n", l.stamp(), l.paint(cDim, "   "+fmt.Sprintf(format, args...)))
}

// arrow prints a message from the client (toServer) or to it.
func (l *ladder) arrow(toServer bool, label, col string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.arrowLocked(toServer, label, col)
}

func (l *ladder) arrowLocked(toServer bool, label, col string) {
	pad := l.width - len([]rune(label)) - 4
	if pad < 2 {
		pad = 2
	}
	var a string
	if toServer {
		a = "── " + label + " " + strings.Repeat("─", pad) + "▶"
	} else {
		a = "◀" + strings.Repeat("─", pad) + " " + label + " ──"
	}
	fmt.Fprintf(l.w, "%s  %-14s %s %s\n", l.stamp(), l.paint(cYellow, l.cliState), l.paint(col, a), l.paint(cYellow, l.srvState))
}

// state records a transition from the trace hook of a ustack side.
func (l *ladder) state(e tcp.TraceEvent) {
	if e.ID.Local.String() != l.server && e.ID.Remote.String() != l.server {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.ID.Local.String() == l.server {
		l.srvState = e.To.String()
		fmt.Fprintf(l.w, "%s  %-14s %*s %s\n", l.stamp(), "", l.width, l.paint(cDim, "server: "+e.From.String()+" → "), l.paint(cYellow+cBold, e.To.String()))
	} else {
		l.cliState = e.To.String()
		fmt.Fprintf(l.w, "%s  %s\n", l.stamp(), l.paint(cDim, "client: "+e.From.String()+" → ")+l.paint(cYellow+cBold, e.To.String()))
	}
}

// setClientState records an inferred state of a kernel client.
func (l *ladder) setClientState(s string) {
	l.mu.Lock()
	l.cliState = s
	l.mu.Unlock()
}

// packet describes one IPv4/TCP packet crossing the server's link.
func (l *ladder) packet(pkt []byte, inbound bool) {
	h, err := header.ParseIPv4(pkt)
	if err != nil || h.Protocol() != header.ProtoTCP {
		return
	}
	t, err := header.ParseTCP(h.Payload())
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := t.Flags()
	seq, ack := t.Seq(), t.Ack()
	if inbound && f&header.FlagSYN != 0 {
		l.cliISN, l.haveCli = seq, true
	}
	if !inbound && f&header.FlagSYN != 0 {
		l.srvISN, l.haveSrv = seq, true
	}
	var rseq, rack uint32
	if inbound {
		rseq, rack = seq-l.cliISN, ack-l.srvISN
	} else {
		rseq, rack = seq-l.srvISN, ack-l.cliISN
	}
	label := strings.ReplaceAll(header.FlagString(f&^header.FlagPSH), "|", "+")
	label += fmt.Sprintf(" seq=%d", rseq)
	if f&header.FlagACK != 0 {
		label += fmt.Sprintf(" ack=%d", rack)
	}
	if n := len(t.Payload()); n > 0 {
		label += fmt.Sprintf(" len=%d", n)
	}
	if l.inferClient {
		l.inferLocked(inbound, f)
	}
	col := cBlue
	if f&(header.FlagSYN|header.FlagFIN|header.FlagRST) != 0 {
		col = cGreen + cBold
	}
	l.arrowLocked(inbound, label, col)
}

// observe wraps the server's link so that every packet is drawn.
type observe struct {
	link.Endpoint
	l *ladder
}

func (o *observe) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := o.Endpoint.ReadBatch(bufs, sizes, offset)
	for i := 0; i < n; i++ {
		o.l.packet(bufs[i][offset:offset+sizes[i]], true)
	}
	return n, err
}

func (o *observe) WriteBatch(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		o.l.packet(b[offset:], false)
	}
	return o.Endpoint.WriteBatch(bufs, offset)
}

// inferLocked moves the kernel client's state along the diagram of RFC 9293
// Figure 5 from the packets it sends and receives (marked "~" as inferred).
func (l *ladder) inferLocked(fromClient bool, f uint8) {
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

// tls draws a TLS event seen by the server (tlslite's observer): what the
// server sent goes to the client, what it received came from it.
func (l *ladder) tls(e tlslite.Event) {
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
		l.arrow(toServer, label, cMag+cBold)
		if detail != "" {
			l.note("%s", detail)
		}
	case tlslite.ChangeCipherSpecEvent:
		l.arrow(toServer, "TLS ChangeCipherSpec", cMag+cBold)
	case tlslite.AlertEvent:
		l.arrow(toServer, "TLS alert "+e.Alert.String()+" (encrypted)", cMag+cBold)
	case tlslite.ApplicationDataEvent:
		what := "encrypted request"
		if e.Sent() {
			what = "encrypted response"
		}
		l.arrow(toServer, fmt.Sprintf("TLS %s, %d bytes AES-GCM", what, len(e.Record)), cMag)
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

// short renders the first bytes of b in hex.
func short(b []byte) string {
	if len(b) > 8 {
		return fmt.Sprintf("%x…", b[:8])
	}
	return fmt.Sprintf("%x", b)
}
