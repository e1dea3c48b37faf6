package lab

import (
	"errors"
	"hash/fnv"
	"io"
	"net/netip"
	"sync"
	"time"

	"ustack/internal/record"
	"ustack/internal/waitfor"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// peer is a TCP the lab builds itself from raw segments, to show what a
// broken protocol would do without breaking ustack: on its listening ports
// it opens a connection on a SYN alone (a two-way handshake), and its
// active closer goes to CLOSED at once instead of waiting in TIME-WAIT.
// Otherwise it follows RFC 9293 as far as the labs need: no
// retransmission, no window, data taken in order only, and a segment for
// no connection answered with a reset. Its state transitions go to the
// lab's trace hook like a stack's.
type peer struct {
	r        *labRun
	addr     netip.Addr
	out      *labTap // its packets go out through this tap
	secret   uint64  // the ISN hash key (RFC 6528)
	mu       sync.Mutex
	ports    map[uint16]bool // listening (two-way) ports
	table    map[tcp.ID]*peerConn
	accepted []*peerConn
	handled  int    // diverted packets taken in, for the world's settle
	port     uint16 // the client's local port
	buf      [][]byte
	sizes    []int
}

// peerConn is one connection of a peer.
type peerConn struct {
	p      *peer
	id     tcp.ID
	state  tcp.State
	iss    uint32
	sndNxt uint32
	rcvNxt uint32
	in     []byte // received, not yet read
	eof    bool
}

func newPeer(r *labRun, addr netip.Addr, out *labTap, seed uint64) *peer {
	p := &peer{r: r, addr: addr, out: out, secret: seed, ports: map[uint16]bool{}, table: map[tcp.ID]*peerConn{}, port: 46000}
	p.buf = [][]byte{make([]byte, link.Headroom+link.MaxPacket)}
	p.sizes = make([]int, 1)
	return p
}

// listen makes port a two-way port: a SYN alone opens a connection.
func (p *peer) listen(port uint16) {
	p.mu.Lock()
	p.ports[port] = true
	p.mu.Unlock()
}

// isn is RFC 6528's initial sequence number: a 4 µs clock plus a hash of
// the 4-tuple, so that a new connection on the same 4-tuple soon after
// starts a little above the old one.
func (p *peer) isn(id tcp.ID) uint32 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(p.secret >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(id.String()))
	return uint32(p.r.now().UnixNano()/int64(4*time.Microsecond)) + uint32(h.Sum64())
}

// divert takes the packets of the peer's ports (a labTap's divert hook).
func (p *peer) divert(pkt []byte) bool {
	s, ok := record.Parse(pkt)
	if !ok || s.Dst != p.addr {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := tcp.ID{Local: netip.AddrPortFrom(s.Dst, s.DstPort), Remote: netip.AddrPortFrom(s.Src, s.SrcPort)}
	if !p.ports[s.DstPort] && p.table[id] == nil {
		return false
	}
	p.handled++
	p.input(id, s)
	return true
}

// takeHandled returns and clears the count of diverted packets taken in.
func (p *peer) takeHandled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.handled
	p.handled = 0
	return n
}

// poll reads what reached the peer (as the client end of the in-memory
// world) and answers it; it returns how many packets it took in.
func (p *peer) poll() int {
	n := 0
	for {
		k, err := p.out.TryReadBatch(p.buf, p.sizes, link.Headroom)
		if k == 0 || err != nil {
			return n
		}
		pkt := p.buf[0][link.Headroom : link.Headroom+p.sizes[0]]
		if s, ok := record.Parse(pkt); ok {
			p.mu.Lock()
			p.input(tcp.ID{Local: netip.AddrPortFrom(s.Dst, s.DstPort), Remote: netip.AddrPortFrom(s.Src, s.SrcPort)}, s)
			p.mu.Unlock()
		}
		n++
	}
}

// conns is how many connections the peer holds.
func (p *peer) conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.table)
}

// acceptedOn returns the first connection opened on port, if any.
func (p *peer) acceptedOn(port uint16) *peerConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.accepted {
		if c.id.Local.Port() == port {
			return c
		}
	}
	return nil
}

// waitAccepted waits up to d for a connection on port (real time).
func (p *peer) waitAccepted(port uint16, d time.Duration) *peerConn {
	var c *peerConn
	waitfor.Within(d, func() bool { c = p.acceptedOn(port); return c != nil })
	return c
}

// send writes one segment from local to remote through the tap. It is
// called with p.mu held.
func (p *peer) send(local, remote netip.AddrPort, seq, ack uint32, flags uint8, payload []byte) {
	pkt := record.Build(local, remote, seq, ack, flags, payload)
	p.out.WriteBatch([][]byte{pkt}, link.Headroom)
}

// input handles one segment for id, with p.mu held.
func (p *peer) input(id tcp.ID, s record.Pkt) {
	c := p.table[id]
	switch {
	case c != nil:
		c.segment(s)
	case s.Is(header.FlagSYN) && p.ports[id.Local.Port()]:
		p.passiveOpen(id, s)
	default:
		p.reset(id, s)
	}
}

// reset answers a segment for no connection (RFC 9293 §3.10.7.1).
func (p *peer) reset(id tcp.ID, s record.Pkt) {
	switch {
	case s.Has(header.FlagRST):
	case s.Has(header.FlagACK):
		p.send(id.Local, id.Remote, s.Ack, 0, header.FlagRST, nil)
	default:
		n := uint32(len(s.Payload))
		if s.Has(header.FlagSYN) {
			n++
		}
		if s.Has(header.FlagFIN) {
			n++
		}
		p.send(id.Local, id.Remote, 0, s.Seq+n, header.FlagRST|header.FlagACK, nil)
	}
}

// passiveOpen is the two-way handshake: SYN+ACK, and ESTABLISHED at once,
// without waiting for the ACK that would prove the SYN is not old.
func (p *peer) passiveOpen(id tcp.ID, s record.Pkt) {
	c := &peerConn{p: p, id: id, state: tcp.Listen, rcvNxt: s.Seq + 1}
	c.iss = p.isn(id)
	c.sndNxt = c.iss + 1
	p.table[id] = c
	c.to(tcp.SynReceived, "rcv SYN")
	c.to(tcp.Established, "snd SYN|ACK: a two-way handshake trusts the SYN alone")
	p.send(id.Local, id.Remote, c.iss, c.rcvNxt, header.FlagSYN|header.FlagACK, nil)
	p.accepted = append(p.accepted, c)
}

// dial opens a connection to remote from the peer's port (the same every
// time unless a connection still holds it): SYN, and SYN-SENT.
func (p *peer) dial(remote netip.AddrPort) *peerConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := tcp.ID{Local: netip.AddrPortFrom(p.addr, p.port), Remote: remote}
	for p.table[id] != nil {
		p.port++
		id.Local = netip.AddrPortFrom(p.addr, p.port)
	}
	c := &peerConn{p: p, id: id, state: tcp.Closed}
	c.iss = p.isn(id)
	c.sndNxt = c.iss + 1
	p.table[id] = c
	c.to(tcp.SynSent, "app connect")
	p.send(id.Local, id.Remote, c.iss, 0, header.FlagSYN, nil)
	return c
}

// to moves the connection to a state and tells the lab's trace hook; a
// CLOSED connection is forgotten.
func (c *peerConn) to(st tcp.State, cause string) {
	from := c.state
	c.state = st
	if st == tcp.Closed {
		delete(c.p.table, c.id)
	}
	c.p.r.trace(tcp.TraceEvent{Time: c.p.r.now(), ID: c.id, From: from, To: st, Cause: cause})
}

func (c *peerConn) send(flags uint8, payload []byte) {
	c.p.send(c.id.Local, c.id.Remote, c.sndNxt, c.rcvNxt, flags, payload)
}

// segment handles a segment on the connection (with p.mu held): the
// arrival processing of RFC 9293 §3.10.7, cut down to what the labs need,
// with one departure: FIN-WAIT-2 goes to CLOSED on the peer's FIN, not to
// TIME-WAIT.
func (c *peerConn) segment(s record.Pkt) {
	if s.Has(header.FlagRST) {
		c.to(tcp.Closed, "rcv RST")
		return
	}
	if c.state == tcp.SynSent {
		if s.Is(header.FlagSYN|header.FlagACK) && s.Ack == c.iss+1 {
			c.rcvNxt = s.Seq + 1
			c.to(tcp.Established, "rcv SYN|ACK")
			c.send(header.FlagACK, nil)
		}
		return
	}
	// Anything out of order, old (a keepalive probe) or acknowledging what
	// was never sent is answered with an ACK and dropped.
	if s.Seq != c.rcvNxt || int32(s.Ack-c.sndNxt) > 0 {
		c.send(header.FlagACK, nil)
		return
	}
	if s.Ack == c.sndNxt {
		switch c.state {
		case tcp.FinWait1:
			c.to(tcp.FinWait2, "rcv ACK of FIN")
		case tcp.LastAck:
			c.to(tcp.Closed, "rcv ACK of FIN")
			return
		}
	}
	c.in = append(c.in, s.Payload...)
	c.rcvNxt += uint32(len(s.Payload))
	if s.Has(header.FlagFIN) {
		c.rcvNxt++
		c.eof = true
		c.finArrived()
	}
	if len(s.Payload) > 0 || s.Has(header.FlagFIN) {
		c.send(header.FlagACK, nil)
	}
}

// finArrived moves the connection on for the peer's FIN.
func (c *peerConn) finArrived() {
	switch c.state {
	case tcp.Established:
		c.to(tcp.CloseWait, "rcv FIN")
	case tcp.FinWait2:
		c.to(tcp.Closed, "rcv FIN: no TIME-WAIT (the lab's broken TCP)")
	}
}

// State is the connection's state.
func (c *peerConn) State() tcp.State {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return c.state
}

// ISS is its initial send sequence number.
func (c *peerConn) ISS() uint32 { return c.iss }

// SndNxt is the next sequence number it sends.
func (c *peerConn) SndNxt() uint32 {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return c.sndNxt
}

// LocalPort is its port.
func (c *peerConn) LocalPort() uint16 { return c.id.Local.Port() }

var errPeerState = errors.New("connection not open for sending")

// TryWrite sends b at once, in one segment (no window, no
// retransmission).
func (c *peerConn) TryWrite(b []byte) (int, error) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if c.state != tcp.Established && c.state != tcp.CloseWait {
		return 0, errPeerState
	}
	c.send(header.FlagACK|header.FlagPSH, b)
	c.sndNxt += uint32(len(b))
	return len(b), nil
}

// TryRead takes what arrived; io.EOF after the peer's FIN.
func (c *peerConn) TryRead(b []byte) (int, error) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	n := copy(b, c.in)
	c.in = c.in[n:]
	if n == 0 && c.eof {
		return 0, io.EOF
	}
	return n, nil
}

// CloseWrite sends FIN.
func (c *peerConn) CloseWrite() error {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	switch c.state {
	case tcp.Established:
		c.to(tcp.FinWait1, "app close")
	case tcp.CloseWait:
		c.to(tcp.LastAck, "app close")
	default:
		return nil
	}
	c.send(header.FlagFIN|header.FlagACK, nil)
	c.sndNxt++
	return nil
}

// Close sends FIN if it was not sent yet.
func (c *peerConn) Close() error { return c.CloseWrite() }
