package lab

import (
	"errors"
	"io"
	"net"
	"time"

	"ustack/internal/record"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The nagle lab's request: a small header, then a small body, written
// one after the other (write-write-read); the reply comes when the server
// has both.
var (
	nagleHeader = []byte("POST /note HTTP/1.1\r\nHost: lab\r\nContent-Length: 24\r\n\r\n")
	nagleBody   = []byte("the body, a second write")
	nagleReply  = []byte("HTTP/1.1 204 No Content\r\n\r\n")
)

// nagleDelay is the one-way delay of the in-memory path: RTT 10 ms.
const nagleDelay = 5 * time.Millisecond

// nagleTimes is what one exchange looked like on the wire.
type nagleTimes struct {
	header, body time.Time // when the two writes' bytes left the client
	headerAck    time.Time // when the server's ACK of the header left it (zero: carried by the reply)
	pureAck      bool      // that ACK carried no data
	reply        time.Time // when the client had the reply
	took         time.Duration
}

// nagleExchange sends the header and the body and waits for the reply,
// over the in-memory world; n0 is where its packets begin in the record.
func (r *labRun) nagleExchange(w *labVWorld, c clientConn, sc *stack.Conn) (nagleTimes, error) {
	n0 := len(r.rec.Packets())
	start := w.clk.Now()
	if _, err := c.TryWrite(nagleHeader); err != nil {
		return nagleTimes{}, err
	}
	if _, err := c.TryWrite(nagleBody); err != nil {
		return nagleTimes{}, err
	}
	var req, reply []byte
	buf := make([]byte, 1024)
	var at time.Time
	ok := w.until(time.Second, func() bool {
		if n, _ := sc.TryRead(buf); n > 0 {
			req = append(req, buf[:n]...)
			if len(req) == len(nagleHeader)+len(nagleBody) {
				sc.TryWrite(nagleReply)
			}
		}
		if n, _ := c.TryRead(buf); n > 0 {
			reply = append(reply, buf[:n]...)
		}
		if len(reply) == len(nagleReply) && at.IsZero() {
			at = w.clk.Now()
		}
		return !at.IsZero()
	})
	if !ok {
		return nagleTimes{}, errors.New("no reply")
	}
	t := nagleWire(r.rec.Packets()[n0:])
	t.reply, t.took = at, at.Sub(start)
	return t, nil
}

// nagleWire reads an exchange's timing from its packets: when the
// header's and the body's bytes left the client, and the server's first
// ACK of the header.
func nagleWire(pk []record.Pkt) nagleTimes {
	var t nagleTimes
	sent := 0
	var first uint32
	for _, p := range pk {
		if p.ToServer && len(p.Payload) > 0 && !p.Dropped {
			if sent == 0 {
				t.header, first = p.T, p.Seq
			}
			sent += len(p.Payload)
			if sent > len(nagleHeader) && t.body.IsZero() {
				t.body = p.T
			}
		}
	}
	for _, p := range pk {
		if !p.ToServer && p.Has(header.FlagACK) && sent > 0 && int32(p.Ack-first) >= int32(len(nagleHeader)) {
			t.headerAck, t.pureAck = p.T, len(p.Payload) == 0
			break
		}
	}
	return t
}

// labNagle: write-write-read with Nagle's algorithm against a delayed
// ACK, then with TCP_NODELAY.
func labNagle(r *labRun) error {
	cfg := tcp.Config{}
	w, ln, err := r.vListen(labVConfig{cli: cfg, srv: cfg, cliSeed: 6, srvSeed: 6,
		cliOut: link.Spec{Delay: nagleDelay}, srvOut: link.Spec{Delay: nagleDelay}})
	if err != nil {
		return err
	}
	defer w.close()
	r.ladderHeader()
	c, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	r.say("the path takes %v each way (RTT %v); the server's delayed-ACK timer is %v (ustack's default, as Linux's minimum)", nagleDelay, 2*nagleDelay, tcp.DefaultDelayedAck)
	r.section("request 1: the server's first ACKs are quick ACKs")
	r.say("the client writes a %d-byte header, then at once a %d-byte body, then waits for the reply", len(nagleHeader), len(nagleBody))
	r.say("Nagle: the body is small and the header, also small, is not yet acknowledged: the body waits")
	t1, err := r.nagleExchange(w, c, sc)
	if err != nil {
		return err
	}
	r.say("a new connection's first ACKs go out at once (quick ACK, as Linux does): the body waited one RTT; the request took %v", t1.took)
	r.say("the server answered within the delayed-ACK time: the connection now counts as interactive, and its ACKs wait to ride on the answers")
	w.run(100 * time.Millisecond)
	r.section("request 2: Nagle meets the delayed ACK")
	r.say("the header goes out; the body waits for its ACK; the server waits for the body before it answers, and holds its ACK for %v hoping to send it with the answer", tcp.DefaultDelayedAck)
	t2, err := r.nagleExchange(w, c, sc)
	if err != nil {
		return err
	}
	r.say("the delayed-ACK timer ends the stand-off: the request took %v instead of one RTT", t2.took)
	w.run(100 * time.Millisecond)
	r.section("request 3: TCP_NODELAY")
	r.say("the client turns Nagle off (TCP_NODELAY): both writes leave at once")
	if err := c.(ustackConn).SetNoDelay(true); err != nil {
		return err
	}
	t3, err := r.nagleExchange(w, c, sc)
	if err != nil {
		return err
	}
	r.say("no stall: the request took %v, one RTT", t3.took)
	r.nagleClaims(t1, t2, t3)
	return nil
}

func (r *labRun) nagleClaims(t1, t2, t3 nagleTimes) {
	d, ato, rtt := nagleDelay, tcp.DefaultDelayedAck, 2*nagleDelay
	r.check(t1.body.Sub(t1.header) == rtt && t1.took == 2*rtt,
		"request 1: the body waits for the header's quick ACK, one RTT (%v); the request takes 2 RTT (%v)", t1.body.Sub(t1.header), t1.took)
	r.check(t2.pureAck && t2.headerAck.Sub(t2.header) == d+ato,
		"request 2: the server ACKs the header only when its delayed-ACK timer expires, %v after the header arrived (%v), in a pure ACK", ato, t2.headerAck.Sub(t2.header)-d)
	r.check(t2.body.Sub(t2.header) == rtt+ato,
		"request 2: Nagle holds the body until that ACK arrives: it leaves RTT + %v = %v after the header (%v)", ato, rtt+ato, t2.body.Sub(t2.header))
	r.check(t2.took == 2*rtt+ato, "request 2 takes 2 RTT + the delayed-ACK timeout = %v (%v)", 2*rtt+ato, t2.took)
	r.check(t3.body.Equal(t3.header) && t3.took == rtt,
		"request 3, TCP_NODELAY: header and body leave together (%v apart) and the request takes one RTT (%v)", t3.body.Sub(t3.header), t3.took)
}

// labNagleTUN: the kernel's client, with Nagle on (Go turns it off by
// default), meets ustack's delayed ACK.
func labNagleTUN(r *labRun) error {
	w, ln, done, err := r.tunListen(tcp.Config{}, nil, nil)
	defer done()
	if err != nil {
		return err
	}
	c, sc, err := w.connect(ln)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	r.say("the kernel's client has Nagle on (Go sets TCP_NODELAY by default; the lab clears it); the server (ustack) delays ACKs up to %v", tcp.DefaultDelayedAck)
	if err := tc.SetNoDelay(false); err != nil {
		return err
	}
	serve := func() error {
		buf := make([]byte, len(nagleHeader)+len(nagleBody))
		if _, err := io.ReadFull(sc, buf); err != nil {
			return err
		}
		_, err := sc.Write(nagleReply)
		return err
	}
	var ts [3]nagleTimes
	for i := range ts {
		switch i {
		case 0:
			r.tunSection("request 1: the server's first ACKs are quick ACKs")
		case 1:
			r.tunSection("request 2: Nagle meets the delayed ACK")
		case 2:
			r.tunSection("request 3: TCP_NODELAY")
			tc.SetNoDelay(true)
		}
		n0 := len(r.rec.Packets())
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- serve() }()
		tc.Write(nagleHeader)
		tc.Write(nagleBody)
		if _, err := io.ReadFull(c, make([]byte, len(nagleReply))); err != nil {
			return err
		}
		if err := <-errc; err != nil {
			return err
		}
		took := time.Since(start)
		pk := r.rec.WaitPkts(time.Second, record.Any(func(p record.Pkt) bool { return !p.ToServer && len(p.Payload) > 0 }))
		ts[i] = nagleWire(pk[n0:])
		ts[i].took = took
		r.say("the request took %v", took.Round(100*time.Microsecond))
		time.Sleep(100 * time.Millisecond) // the kernel's delayed ACK of the reply goes out
	}
	ato := tcp.DefaultDelayedAck
	gap := ts[1].body.Sub(ts[1].header)
	r.check(ts[1].pureAck && within(ts[1].headerAck.Sub(ts[1].header), ato, 10*time.Millisecond),
		"request 2: the server (ustack) ACKs the header when its delayed-ACK timer expires, %v after it (%v), in a pure ACK", ato, ts[1].headerAck.Sub(ts[1].header).Round(100*time.Microsecond))
	r.check(within(gap, ato, 10*time.Millisecond) && ts[1].took >= ato,
		"request 2: the kernel's Nagle holds the body until that ACK: it leaves %v after the header (%v)", ato, gap.Round(100*time.Microsecond))
	r.check(ts[2].body.Sub(ts[2].header) < 5*time.Millisecond && ts[2].took < ato/2,
		"request 3, TCP_NODELAY: the body follows the header at once (%v) and the request takes %v", ts[2].body.Sub(ts[2].header).Round(100*time.Microsecond), ts[2].took.Round(100*time.Microsecond))
	return nil
}
