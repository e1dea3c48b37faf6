package stack

import (
	"fmt"
	"sync"

	"ustack/stack/counter"
	"ustack/stack/tcp"
	"ustack/stack/udp"
)

// Stats are the stack-wide counters (Each lists the same, and more, by
// name).
type Stats struct {
	IP                map[string]uint64 // the IPv4 layer's (Each's "ip." counters)
	IP6               map[string]uint64 // the IPv6 layer's (Each's "ip6." counters)
	TCPSegsIn         uint64
	TCPSegsOut        uint64
	TCPBadHeader      uint64 // too short or bad data offset
	TCPBadChecksum    uint64
	TCPBadOptions     uint64
	TCPNoConnection   uint64 // segments for no connection or listener (answered with RST)
	TCPResetsSent     uint64 // RSTs sent for segments with no connection
	TCPListenOverflow uint64 // SYNs or cookie ACKs dropped: queue full
	TCPSynCookiesSent uint64 // SYN-ACKs sent with a cookie
	TCPSynCookiesOK   uint64 // connections made from a valid cookie
	TCPConnLimit      uint64 // SYNs dropped: MaxConns reached
	TCPActiveOpens    uint64
	TCPPassiveOpens   uint64
	TCPEstablished    uint64 // connections that reached ESTABLISHED
	TCPRetransmits    uint64 // from connections that have ended
	TCPConns          int    // connections with a TCB now
	LinkWriteErrors   uint64
	LinkReadErrors    uint64
	TCPSegsAddrGone   uint64 // segments not sent: their source address was removed
	TCPSegsTooBig     uint64 // segments not sent: larger than a packet buffer (a TCB bug: never expected)
	TCPFINsOnData     uint64 // bare FINs sent on the connection's data packet, still queued (Linux's tcp_send_fin)

	UDPInDatagrams  uint64 // queued to a socket
	UDPOutDatagrams uint64
	UDPNoPort       uint64 // for no socket (answered with ICMP port unreachable)
	UDPBadHeader    uint64 // short, or a bad length field
	UDPBadChecksum  uint64
	UDPQueueFull    uint64 // dropped: the socket's receive queue was full
	UDPSockets      int    // sockets open now

	// Queues are the counters of each queue of the link the stack reads
	// (one, unless the link is a link.MultiQueue with several).
	Queues []QueueStats
}

// event is a stack-wide count that is not a drop.
type event uint8

const (
	evSegsIn       event = iota // TCP segments that passed the checks
	evSegsOut                   // TCP segments sent
	evResetsSent                // RSTs sent for segments with no connection
	evCookiesSent               // SYN-ACKs sent with a cookie
	evCookiesOK                 // connections made from a valid cookie
	evActiveOpens               // DialTCP and DialTCPAsync
	evPassiveOpens              // connections made for a listener
	evEstablished               // connections that reached ESTABLISHED
	evRetransmits               // retransmissions of connections that have ended
	evLinkWriteErr              // WriteBatch errors
	evLinkReadErr               // ReadBatch errors
	evAddrGone                  // TCP segments not sent: their source address was removed
	evSegTooBig                 // TCP segments not sent: larger than a packet buffer (a TCB bug)
	evFINsOnData                // bare FINs that left on the connection's queued data packet
	numEvents
)

var eventNames = [numEvents]string{
	evSegsIn: "segs_in", evSegsOut: "segs_out", evResetsSent: "resets_sent",
	evCookiesSent: "syn_cookies_sent", evCookiesOK: "syn_cookies_ok",
	evActiveOpens: "active_opens", evPassiveOpens: "passive_opens", evEstablished: "established",
	evRetransmits: "retransmits", evLinkWriteErr: "link_write_errors", evLinkReadErr: "link_read_errors",
	evAddrGone: "segs_addr_gone", evSegTooBig: "segs_too_big", evFINsOnData: "fins_on_data",
}

func (e event) String() string { return counter.Name(eventNames[:], e, "event") }

// dropReason is why the stack dropped a TCP segment (or a connection in
// the making) after the IPv4 or IPv6 layer delivered it.
type dropReason uint8

const (
	dropBadHeader      dropReason = iota // too short or bad data offset
	dropBadChecksum                      // TCP checksum
	dropBadOptions                       // malformed TCP options
	dropNoConnection                     // no connection or listener (answered with RST)
	dropListenOverflow                   // a listener's accept queue is full (Linux's ListenOverflows)
	dropSYNQueueFull                     // a listener's SYN queue is full and no SYN cookie answers
	dropConnLimit                        // Options.MaxConns reached
	dropListenerClosed                   // the listener closed while the segment was handled
	dropTupleInUse                       // another connection took the 4-tuple meanwhile
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropBadHeader: "bad_header", dropBadChecksum: "bad_checksum", dropBadOptions: "bad_options",
	dropNoConnection: "no_connection", dropListenOverflow: "listen_overflow", dropConnLimit: "conn_limit",
	dropListenerClosed: "listener_closed", dropTupleInUse: "tuple_in_use", dropSYNQueueFull: "syn_queue_full",
}

func (r dropReason) String() string { return counter.Name(dropReasonNames[:], r, "reason") }

// counters are the stack's own counters.
type counters = counter.Layer[event, dropReason]

func newCounters() counters { return counter.NewLayer(numEvents, "drop_", numDropReasons) }

// Stats returns the stack's counters.
func (s *Stack) Stats() Stats {
	s.mu.RLock()
	n := len(s.conns)
	s.mu.RUnlock()
	ev, dr := s.cnt.Load, s.cnt.Drops
	queues := make([]QueueStats, len(s.lanes))
	for i, ln := range s.lanes {
		queues[i] = ln.stats()
	}
	return Stats{
		Queues:            queues,
		IP:                s.ip.Stats.Snapshot(),
		IP6:               s.ip6.Stats.Snapshot(),
		TCPSegsIn:         ev(evSegsIn),
		TCPSegsOut:        ev(evSegsOut),
		TCPBadHeader:      dr(dropBadHeader),
		TCPBadChecksum:    dr(dropBadChecksum),
		TCPBadOptions:     dr(dropBadOptions),
		TCPNoConnection:   dr(dropNoConnection),
		TCPResetsSent:     ev(evResetsSent),
		TCPListenOverflow: dr(dropListenOverflow) + dr(dropSYNQueueFull),
		TCPSynCookiesSent: ev(evCookiesSent),
		TCPSynCookiesOK:   ev(evCookiesOK),
		TCPConnLimit:      dr(dropConnLimit),
		TCPActiveOpens:    ev(evActiveOpens),
		TCPPassiveOpens:   ev(evPassiveOpens),
		TCPEstablished:    ev(evEstablished),
		TCPRetransmits:    ev(evRetransmits),
		TCPConns:          n,
		LinkWriteErrors:   ev(evLinkWriteErr),
		LinkReadErrors:    ev(evLinkReadErr),
		TCPSegsAddrGone:   ev(evAddrGone),
		TCPSegsTooBig:     ev(evSegTooBig),
		TCPFINsOnData:     ev(evFINsOnData),
		UDPInDatagrams:    s.udp.Stats.Load(udp.InDatagrams),
		UDPOutDatagrams:   s.udp.Stats.Load(udp.OutDatagrams),
		UDPNoPort:         s.udp.Stats.Drops(udp.NoPort),
		UDPBadHeader:      s.udp.Stats.Drops(udp.BadHeader),
		UDPBadChecksum:    s.udp.Stats.Drops(udp.BadChecksum),
		UDPQueueFull:      s.udp.Stats.Drops(udp.QueueFull),
		UDPSockets:        s.udp.Len(),
	}
}

// Each lists every counter of the stack by name, layer by layer: "ip."
// then the IPv4 layer's (ip.received, ..., ip.drop_bad_checksum, ...),
// "ip6." then the IPv6 layer's (ip6.received, ..., ip6.drop_not_for_us,
// ...),
// "tcp." then the stack's own (tcp.segs_in, ..., tcp.drop_no_connection,
// ..., and tcp.conns, the connections with a TCB now), "udp." then UDP's
// (udp.in_datagrams, ..., udp.drop_no_port, ..., and udp.sockets, open
// now), "icmp." then what became of the ICMP errors about TCP and UDP
// (icmp.errors_no_conn, ...), "queue.0." and so on, each queue's
// (queue.0.rx_packets, queue.0.tx_packets, queue.0.rx_batches) when the
// stack reads more than one, and "link." then the link endpoint's, if it
// lists counters (a counter.Lister, as link.Impaired and link.PipeEnd
// are).
func (s *Stack) Each(f func(name string, v uint64)) {
	counter.Prefixed("ip.", &s.ip.Stats).Each(f)
	counter.Prefixed("ip6.", &s.ip6.Stats).Each(f)
	counter.Prefixed("tcp.", s.cnt).Each(f)
	s.mu.RLock()
	n := len(s.conns)
	s.mu.RUnlock()
	f("tcp.conns", uint64(n))
	counter.Prefixed("udp.", s.udp.Stats).Each(f)
	f("udp.sockets", uint64(s.udp.Len()))
	counter.Prefixed("icmp.", s.icmpCnt).Each(f)
	if len(s.lanes) > 1 {
		for _, ln := range s.lanes {
			counter.Prefixed(fmt.Sprintf("queue.%d.", ln.idx), ln.cnt).Each(f)
		}
	}
	if l, ok := s.ep.(counter.Lister); ok {
		counter.Prefixed("link.", l).Each(f)
	}
}

// endedStats sums the counters of the connections that have ended. mu is a
// leaf lock; gen counts the additions, so that TCPTotals can tell whether a
// connection ended while it was summing the open ones.
type endedStats struct {
	mu  sync.Mutex
	st  tcp.Stats
	gen uint64
}

func (e *endedStats) add(st tcp.Stats) {
	e.mu.Lock()
	e.st.Add(st)
	e.gen++
	e.mu.Unlock()
}

func (e *endedStats) snapshot() (tcp.Stats, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st, e.gen
}

// TCPTotals sums the counters of every connection the stack has had, open
// or ended, as Linux's /proc/net/netstat counts stack-wide (TCPTimeouts,
// TCPLossProbes, ...). It locks each open connection in turn.
//
// A connection that ends during the call must be counted exactly once:
// remove adds its counters to ended before it leaves the table, and under
// its c.mu, so a connection this call finds gone is in ended if no
// connection ended between the two snapshots of ended's generation; if one
// did, the sum is taken again (the loss bench once read all zeros here: its
// one connection ended between the table's copy and ended's).
func (s *Stack) TCPTotals() tcp.Stats {
	for try := 0; ; try++ {
		total, gen := s.ended.snapshot()
		s.mu.RLock()
		conns := make([]*Conn, 0, len(s.conns))
		for _, c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.RUnlock()
		for _, c := range conns {
			c.mu.Lock()
			if !c.gone {
				total.Add(c.tcb.Stats())
			}
			c.mu.Unlock()
		}
		if _, now := s.ended.snapshot(); now == gen || try == 15 {
			// After 16 tries under a storm of ends, the last sum stands:
			// it may leave out a connection that ended during it.
			return total
		}
	}
}
