package lab

// The resumption lab: a full handshake (RFC 5246 §7.3 Figure 1), an
// abbreviated one by session ID (Figure 2), one by session ticket
// (RFC 5077 §3.1), and a ticket a server cannot open.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"ustack/internal/record"
	"ustack/stack/header"
	"ustack/stack/tcp"
	"ustack/tlslite"
)

// labResumeDelay holds each of the server's packets in the network, so
// that a round trip (≈ this) dwarfs the computing and can be counted.
const labResumeDelay = 40 * time.Millisecond

// labResumeTCP: Nagle off, so that no flight waits for an ACK (as Go's
// sockets, and so the kernel client, do by default).
var labResumeTCP = tcp.Config{NoDelay: true}

func (r *labRun) tlsEnvMemDelayed() (*labTLSEnv, func(), error) {
	return r.tlsEnvMemWith(labResumeDelay, labResumeTCP)
}

func (r *labRun) tlsEnvTUNDelayed() (*labTLSEnv, func(), error) {
	return r.tlsEnvTUNWith(labResumeDelay, labResumeTCP)
}

// The messages an abbreviated handshake leaves out, from the client's
// side: ← received, → sent.
var labResumeGone = []string{"←Certificate", "←ServerKeyExchange", "←ServerHelloDone", "→ClientKeyExchange"}

// resConn is one connection of the lab, from the client's side.
type resConn struct {
	seq           []string // TLS messages up to the client's first application data
	flights       int      // the server's flights among them: round trips waited
	offeredTicket bool
	offeredID     []byte // the session ID in ClientHello
	echoedID      []byte // the one in ServerHello
	ticket        []byte // a NewSessionTicket's
	cli, srv      tlslite.ConnectionState
	rtt, ready    time.Duration // ready: from ClientHello to the first application data
	answered      bool
}

func (c resConn) has(m string) bool { return slices.Contains(c.seq, m) }

func (c resConn) before(a, b string) bool {
	i, j := slices.Index(c.seq, a), slices.Index(c.seq, b)
	return i >= 0 && j >= 0 && i < j
}

// full: every message of a full handshake is there, the client's
// ChangeCipherSpec first.
func (c resConn) full() bool {
	for _, m := range labResumeGone {
		if !c.has(m) {
			return false
		}
	}
	return c.before("→ChangeCipherSpec", "←ChangeCipherSpec")
}

// abbreviated: none of labResumeGone, the server's ChangeCipherSpec and
// Finished first.
func (c resConn) abbreviated() bool {
	for _, m := range labResumeGone {
		if c.has(m) {
			return false
		}
	}
	return c.before("←Finished", "→ChangeCipherSpec")
}

// rtts is the wait before the first application data in round trips.
func (c resConn) rtts() float64 {
	if c.rtt <= 0 {
		return 0
	}
	return float64(c.ready) / float64(c.rtt)
}

// resumption runs the five connections and checks them.
func (r *labRun) resumption(env *labTLSEnv) error {
	ca, err := labCA("ustack lab CA")
	if err != nil {
		return err
	}
	cert, err := ca.Issue([]net.IP{net.IP(r.fam.server.Addr().AsSlice())}, nil, nil)
	if err != nil {
		return err
	}
	roots := r.tlsLadder(env, ca)
	var keyA, keyB [32]byte
	rand.Read(keyA[:])
	rand.Read(keyB[:])
	srv := &tlslite.Config{Certificates: []tlslite.Certificate{cert}}
	srv.SetSessionTicketKeys([][32]byte{keyA})
	other := &tlslite.Config{Certificates: []tlslite.Certificate{cert}}
	other.SetSessionTicketKeys([][32]byte{keyB})
	r.say("the server can resume a session two ways: from its session cache, by session ID (RFC 5246 §7.3), or from a session ticket the client brings back, sealed with the server's ticket key (RFC 5077)")
	r.say("each of the server's packets is held %v in the network: one round trip (RTT) is about %v", labResumeDelay, labResumeDelay)
	r.say("(each connection starts with its TCP handshake, one RTT before the ClientHello; only TLS messages are drawn)")
	name := r.fam.server.Addr().String()
	idClient := &tlslite.Config{RootCAs: roots, ServerName: name, SessionTicketsDisabled: true, ClientSessionCache: tlslite.NewLRUClientSessionCache(4)}
	tkClient := &tlslite.Config{RootCAs: roots, ServerName: name, ClientSessionCache: tlslite.NewLRUClientSessionCache(4)}
	steps := []struct {
		title    string
		srv, cli *tlslite.Config
	}{
		{"1. a full handshake (a client without tickets)", srv, idClient},
		{"2. the same client again: resumption by session ID", srv, idClient},
		{"3. a full handshake by a client that takes tickets", srv, tkClient},
		{"4. that client again: resumption by session ticket", srv, tkClient},
		{"5. the ticket, to a server with another ticket key", other, tkClient},
	}
	var conns []resConn
	for _, s := range steps {
		c, err := r.resumeConn(env, s.title, s.srv, s.cli)
		if err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
		conns = append(conns, c)
	}
	r.resumeClaims(conns)
	return nil
}

// resumeConn runs one connection: a handshake, one request and its answer.
func (r *labRun) resumeConn(env *labTLSEnv, title string, srvCfg, cliCfg *tlslite.Config) (resConn, error) {
	r.section("%s", r.T(title))
	r.l.Restart(r.fam.server.String(), "", "")
	obs := &labResumeObs{labTLSObserver: labTLSObserver{r: r, client: true, draw: true}}
	if s, ok := cliCfg.ClientSessionCache.Get(cliCfg.ServerName); ok {
		obs.c.offeredTicket = len(s.Ticket) > 0 && !cliCfg.SessionTicketsDisabled
		if obs.c.offeredTicket {
			r.say("the client's cache holds a session with a %d-byte ticket (key name %s), opaque to it", len(s.Ticket), short(s.Ticket[:16]))
		} else {
			r.say("the client's cache holds a session: ID %s", short(s.SessionID))
		}
	} else {
		r.say("the client's session cache is empty")
	}
	req := "GET / HTTP/1.1\r\nHost: " + r.fam.host() + "\r\nConnection: close\r\n\r\n"
	const resp = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nhi\n"
	srvState, srvErr := serveHTTPS(env, srvCfg, resp)
	cfg := cliCfg.Clone()
	cfg.Observer = obs.observe
	c, ctx, closeClient, err := env.client(cfg)
	if err != nil {
		return obs.c, err
	}
	defer closeClient()
	if err := c.Handshake(ctx); err != nil {
		return obs.c, fmt.Errorf("TLS handshake: %w", err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		return obs.c, err
	}
	body, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		return obs.c, err
	}
	if err := <-srvErr; err != nil {
		return obs.c, fmt.Errorf("server: %w", err)
	}
	c.Close()
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	pk := labConnPkts(r.rec.WaitPkts(2*time.Second, labFINOn(port)), port)
	obs.mu.Lock()
	rc := obs.c
	obs.mu.Unlock()
	rc.cli, rc.srv, rc.answered = c.ConnectionState(), *srvState, string(body) == resp
	rc.rtt = labHandshakeRTT(pk)
	r.say("the client could send its request %v after its ClientHello: %.1f RTT (RTT %v, measured on the TCP handshake)",
		rc.ready.Round(time.Millisecond), rc.rtts(), rc.rtt.Round(time.Millisecond))
	return rc, nil
}

// labHandshakeRTT is the time from the client's SYN to its ACK of the
// SYN+ACK, as the recording saw them.
func labHandshakeRTT(pk []record.Pkt) time.Duration {
	syn, ok1 := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagSYN) })
	ack, ok2 := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Is(header.FlagACK) })
	if !ok1 || !ok2 {
		return 0
	}
	return ack.T.Sub(syn.T)
}

// labResumeObs draws the client's messages, keeps their order up to its
// first application data, times that, and narrates resumption.
type labResumeObs struct {
	labTLSObserver
	mu      sync.Mutex
	c       resConn
	helloAt time.Time
	appSent bool
	inbound bool // the last message was the server's
}

func (o *labResumeObs) observe(e tlslite.Event) {
	now := time.Now()
	o.labTLSObserver.observe(e)
	name := ""
	switch e := e.(type) {
	case tlslite.HandshakeEvent:
		name = e.Message()
	case tlslite.ChangeCipherSpecEvent:
		name = "ChangeCipherSpec"
	case tlslite.ApplicationDataEvent:
		name = "ApplicationData"
	}
	if name == "" {
		return
	}
	o.mu.Lock()
	if !o.appSent {
		dir := "←"
		if e.Sent() {
			dir = "→"
		}
		if !e.Sent() && !o.inbound {
			o.c.flights++
		}
		o.inbound = !e.Sent()
		o.c.seq = append(o.c.seq, dir+name)
		if name == "ApplicationData" && e.Sent() {
			o.appSent, o.c.ready = true, now.Sub(o.helloAt)
		}
	}
	if name == "ClientHello" {
		o.helloAt = now
	}
	o.mu.Unlock()
	o.narrate(e)
}

// narrate says what the messages of resumption mean, as they come.
func (o *labResumeObs) narrate(e tlslite.Event) {
	r := o.r
	o.mu.Lock()
	defer o.mu.Unlock()
	switch e := e.(type) {
	case tlslite.ClientHelloEvent:
		o.c.offeredID = e.SessionID
		switch {
		case o.c.offeredTicket:
			r.say("ClientHello carries the ticket in its session_ticket extension, and a fresh session ID %s: its echo will say the server resumed", short(e.SessionID))
		case len(e.SessionID) > 0:
			r.say("ClientHello offers session ID %s", short(e.SessionID))
		default:
			r.say("ClientHello offers no session")
		}
	case tlslite.ServerHelloEvent:
		o.c.echoedID = e.SessionID
		switch {
		case e.Resumed:
			r.say("ServerHello echoes that session ID: the server resumes the session; no certificate, no key exchange: the master secret is the session's, the keys are new (fresh randoms)")
		case len(o.c.offeredID) > 0:
			r.say("ServerHello carries another session ID, %s: the server does not resume; a full handshake follows", short(e.SessionID))
		default:
			r.say("ServerHello: session ID %s, the name of this new session", short(e.SessionID))
		}
	case tlslite.NewSessionTicketEvent:
		o.c.ticket = e.Ticket
		r.say("NewSessionTicket: %d bytes, the session's state sealed with the server's ticket key (key name %s); the server keeps nothing", len(e.Ticket), short(e.Ticket[:min(16, len(e.Ticket))]))
	case tlslite.FinishedEvent:
		if !e.Sent() && !slices.Contains(o.c.seq, "→ChangeCipherSpec") {
			r.say("the server's ChangeCipherSpec and Finished come first: it had the master secret at once")
		}
	}
}

// resumeClaims checks the five connections.
func (r *labRun) resumeClaims(c []resConn) {
	full, byID, fullT, byTicket, fallback := c[0], c[1], c[2], c[3], c[4]
	r.check(full.full() && !full.cli.DidResume && !full.srv.DidResume,
		"full handshake: the server sends Certificate, ServerKeyExchange and ServerHelloDone, the client ClientKeyExchange, then the client's ChangeCipherSpec+Finished come first; DidResume is false on both sides")
	r.check(!full.has("←NewSessionTicket") && len(full.echoedID) == 32,
		"a client without tickets gets no NewSessionTicket: the server names the session (ID %s) and keeps it in its cache", short(full.echoedID))
	r.check(len(byID.offeredID) > 0 && string(byID.offeredID) == string(full.echoedID) && string(byID.echoedID) == string(byID.offeredID),
		"by session ID: ClientHello offers the ID of handshake 1 and ServerHello echoes it")
	r.check(byID.abbreviated(),
		"by session ID: Certificate, ServerKeyExchange, ServerHelloDone and ClientKeyExchange disappear, and the server sends ChangeCipherSpec+Finished first")
	r.check(byID.cli.DidResume && byID.srv.DidResume && !byID.cli.ResumedWithTicket && !byID.srv.ResumedWithTicket,
		"by session ID: DidResume on both sides, ResumedWithTicket on neither")
	r.check(fullT.full() && fullT.before("←NewSessionTicket", "←ChangeCipherSpec") && len(fullT.ticket) > 0 && !fullT.cli.DidResume,
		"a client that takes tickets gets a NewSessionTicket at the end of its full handshake, before the server's ChangeCipherSpec (RFC 5077 §3.3)")
	r.check(byTicket.offeredTicket && byTicket.abbreviated(),
		"by ticket: ClientHello carries the ticket; the same four messages disappear and the server's ChangeCipherSpec+Finished come first")
	r.check(byTicket.cli.DidResume && byTicket.srv.DidResume && byTicket.cli.ResumedWithTicket && byTicket.srv.ResumedWithTicket,
		"by ticket: DidResume and ResumedWithTicket on both sides")
	r.check(full.flights == 2 && fullT.flights == 2 && byID.flights == 1 && byTicket.flights == 1,
		"the client waits 2 round trips before it can send data after a full handshake, 1 after a resumed one (server flights on the ladder: 1. %d, 2. %d, 3. %d, 4. %d)",
		full.flights, byID.flights, fullT.flights, byTicket.flights)
	// The timings are real time on a shared machine, which can only add
	// to them: what the network imposes is checked (lower bounds), the
	// round trips themselves are counted on the ladder above.
	d := labResumeDelay
	ms := func(x resConn) time.Duration { return x.ready.Round(time.Millisecond) }
	r.check(full.ready >= 2*d && fullT.ready >= 2*d && byID.ready >= d && byTicket.ready >= d,
		"measured: the full handshakes waited %v and %v, at least 2 RTT (2×%v); the resumed ones %v and %v, at least 1 RTT",
		ms(full), ms(fullT), d, ms(byID), ms(byTicket))
	r.check(fallback.offeredTicket && fallback.full() && !fallback.cli.DidResume && !fallback.srv.DidResume && fallback.answered,
		"a server with another ticket key cannot open the ticket: it falls back to a full handshake (DidResume false on both sides), and the request is still answered")
	r.check(full.answered && byID.answered && fullT.answered && byTicket.answered,
		"every connection, resumed or not, carried its request and answer")
}
