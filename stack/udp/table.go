package udp

import (
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"syscall"

	"ustack/stack/counter"
	"ustack/stack/header"
)

// Ephemeral ports, as Linux's default ip_local_port_range.
const EphemeralLo, EphemeralHi = 32768, 60999

// Event is something the UDP layer counts that is not a drop.
type Event uint8

const (
	InDatagrams  Event = iota // datagrams queued to an endpoint (Linux's InDatagrams)
	OutDatagrams              // datagrams sent (OutDatagrams)
	numEvents
)

var eventNames = [numEvents]string{InDatagrams: "in_datagrams", OutDatagrams: "out_datagrams"}

func (e Event) String() string { return counter.Name(eventNames[:], e, "event") }

// Reason is why Input dropped a datagram.
type Reason uint8

const (
	BadHeader   Reason = iota // shorter than 8 bytes, or a length field below 8 or beyond the IP payload
	BadChecksum               // checksum wrong (Linux's InCsumErrors)
	NoPort                    // no endpoint for it (NoPorts; answered with ICMP port unreachable)
	QueueFull                 // the endpoint's receive queue was full (RcvbufErrors)
	numReasons
)

var reasonNames = [numReasons]string{
	BadHeader: "bad_header", BadChecksum: "bad_checksum", NoPort: "no_port", QueueFull: "queue_full",
}

func (r Reason) String() string { return counter.Name(reasonNames[:], r, "reason") }

// Stats are the layer's counters: Each lists in_datagrams, out_datagrams
// and drop_bad_header, drop_bad_checksum, drop_no_port, drop_queue_full.
type Stats struct{ counter.Layer[Event, Reason] }

// fourTuple keys a connected endpoint.
type fourTuple struct{ local, remote netip.AddrPort }

// Table is the demultiplexing table of one stack's UDP endpoints. Its
// methods may be called from any goroutine; Lookup takes a read lock.
type Table struct {
	Stats Stats

	mu    sync.RWMutex
	bound map[netip.AddrPort]*Endpoint // unconnected, by local address (invalid: all) and port
	conns map[fourTuple]*Endpoint      // connected, by both ends
	ports map[uint16]int               // endpoints per local port
	rand  *mrand.Rand
}

// NewTable returns an empty table whose ephemeral ports start at random
// places drawn from seed.
func NewTable(seed [32]byte) *Table {
	return &Table{
		Stats: Stats{counter.NewLayer(numEvents, "drop_", numReasons)},
		bound: make(map[netip.AddrPort]*Endpoint),
		conns: make(map[fourTuple]*Endpoint),
		ports: make(map[uint16]int),
		rand:  mrand.New(mrand.NewChaCha8(seed)),
	}
}

// Bind enters e into the table. A local port of 0 picks an ephemeral port
// that no endpoint uses (Linux's udp_lib_get_port with port 0). A binding
// conflicts (EADDRINUSE) only with one of the same local address and port
// (or, connected, the same four-tuple): an endpoint bound to one address
// and one bound to all may share a port, and Lookup prefers the specific
// one. Linux refuses that pair unless both set SO_REUSEADDR, then also
// prefers the more specific one; we behave as if they had.
func (t *Table) Bind(e *Endpoint) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Local.Port() == 0 {
		port, ok := t.ephemeralLocked()
		if !ok {
			return fmt.Errorf("udp: all %d ephemeral ports are in use: %w", EphemeralHi-EphemeralLo+1, syscall.EADDRINUSE)
		}
		e.Local = netip.AddrPortFrom(e.Local.Addr(), port)
	}
	if e.Connected() {
		k := fourTuple{e.Local, e.Remote}
		if t.conns[k] != nil {
			return fmt.Errorf("udp: %v to %v: %w", e.Local, e.Remote, syscall.EADDRINUSE)
		}
		t.conns[k] = e
	} else {
		if t.bound[e.Local] != nil {
			return fmt.Errorf("udp: %v: %w", e.Local, syscall.EADDRINUSE)
		}
		t.bound[e.Local] = e
	}
	t.ports[e.Local.Port()]++
	return nil
}

func (t *Table) ephemeralLocked() (uint16, bool) {
	n := EphemeralHi - EphemeralLo + 1
	start := t.rand.IntN(n)
	for i := 0; i < n; i++ {
		p := uint16(EphemeralLo + (start+i)%n)
		if t.ports[p] == 0 {
			return p, true
		}
	}
	return 0, false
}

// Unbind takes e out of the table and closes it: its queue is freed and
// its readers wake up with net.ErrClosed.
func (t *Table) Unbind(e *Endpoint) {
	t.mu.Lock()
	removed := false
	if e.Connected() {
		k := fourTuple{e.Local, e.Remote}
		if t.conns[k] == e {
			delete(t.conns, k)
			removed = true
		}
	} else if t.bound[e.Local] == e {
		delete(t.bound, e.Local)
		removed = true
	}
	if removed {
		if t.ports[e.Local.Port()]--; t.ports[e.Local.Port()] <= 0 {
			delete(t.ports, e.Local.Port())
		}
	}
	t.mu.Unlock()
	e.close()
}

// Lookup finds the endpoint for a datagram to local from remote, the most
// specific first as Linux's compute_score ranks them: connected to remote
// from local, then bound to local's address, then bound to all addresses.
func (t *Table) Lookup(local, remote netip.AddrPort) *Endpoint {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.conns) != 0 {
		if e := t.conns[fourTuple{local, remote}]; e != nil {
			return e
		}
	}
	if e := t.bound[local]; e != nil {
		return e
	}
	return t.bound[netip.AddrPortFrom(netip.Addr{}, local.Port())]
}

// Connected finds the connected endpoint from local to remote, for an ICMP
// error quoting a datagram it sent; nil if none.
func (t *Table) Connected(local, remote netip.AddrPort) *Endpoint {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.conns[fourTuple{local, remote}]
}

// All returns every endpoint in the table.
func (t *Table) All() []*Endpoint {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Endpoint, 0, len(t.bound)+len(t.conns))
	for _, e := range t.bound {
		out = append(out, e)
	}
	for _, e := range t.conns {
		out = append(out, e)
	}
	return out
}

// Len is the number of endpoints in the table.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.bound) + len(t.conns)
}

// Verdict is what Input did with a datagram.
type Verdict uint8

const (
	// Dropped: malformed, or its endpoint's queue was full; counted.
	Dropped Verdict = iota
	// Delivered: queued to its endpoint.
	Delivered
	// Unreachable: no endpoint, counted as NoPort; the caller answers
	// with ICMP port unreachable (RFC 1122 §4.1.3.1: "If a datagram
	// arrives addressed to a UDP port for which there is no pending LISTEN
	// call, UDP SHOULD send an ICMP Port Unreachable message"), which the
	// IP layer sends only for a unicast datagram, rate-limited.
	Unreachable
)

// Input takes the IP payload b of a datagram from src to dst (one of our
// addresses, unicast: the IP layer checked): the header (RFC 768), the
// checksum (RFC 1122 §4.1.3.4: verified when present, unless csumOK says
// the link vouches for it), then the endpoint,
// whose queue takes a copy of the data. It never keeps b and does not
// allocate in steady state.
func (t *Table) Input(src, dst netip.Addr, b []byte, csumOK bool) Verdict {
	u, err := header.ParseUDP(b)
	if err != nil {
		t.Stats.Drop(BadHeader)
		return Dropped
	}
	if !csumOK && !header.UDPChecksumOK(u, src, dst) {
		t.Stats.Drop(BadChecksum)
		return Dropped
	}
	from := netip.AddrPortFrom(src, u.SrcPort())
	e := t.Lookup(netip.AddrPortFrom(dst, u.DstPort()), from)
	if e == nil {
		t.Stats.Drop(NoPort)
		return Unreachable
	}
	if !e.deliver(from, u.Payload()) {
		t.Stats.Drop(QueueFull)
		return Dropped
	}
	t.Stats.Inc(InDatagrams)
	return Delivered
}
