package gvpeer

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"ustack/stack/link"
)

// Options tune the gVisor TCP so that comparisons with ustack are fair.
// Every feature that changes throughput is off unless set: the zero value is
// gVisor's stock TCP (Reno, 1 MiB buffers, RACK loss detection, window
// scaling, 60 s TIME-WAIT) except that SACK and receive-buffer auto-tuning,
// which gVisor turns on by default, are off.
type Options struct {
	// SACK enables selective acknowledgements (RFC 2018).
	SACK bool
	// CongestionControl is "reno" or "cubic"; empty keeps gVisor's default
	// (reno).
	CongestionControl string
	// SendBuf and RecvBuf are the default send and receive buffer sizes in
	// bytes (the maximum is raised to match). gVisor advertises about half
	// of the receive buffer as window.
	SendBuf, RecvBuf int
	// ModerateRecvBuf turns on receive-buffer auto-tuning.
	ModerateRecvBuf bool
	// TimeWait is how long a connection stays in TIME-WAIT
	// (TCPTimeWaitTimeoutOption); zero keeps gVisor's 60 s.
	TimeWait time.Duration
	// FinWait2 bounds FIN-WAIT-2 for orphaned connections
	// (TCPLingerTimeoutOption); zero keeps gVisor's 60 s.
	FinWait2 time.Duration
	// MinRTO is the smallest retransmission timeout; zero keeps gVisor's
	// 200 ms.
	MinRTO time.Duration
	// Nagle turns on Nagle's algorithm for new endpoints (gVisor's default
	// is off, like Go's net).
	Nagle bool
}

// Host is a gVisor netstack with one address on a link.Endpoint.
type Host struct {
	s    *stack.Stack
	lep  *linkEndpoint
	addr netip.Addr
	opts Options

	closeOnce sync.Once
}

const nicID tcpip.NICID = 1

// New starts a gVisor host with address addr, IPv4 or IPv6, on ep. The host
// reads from ep until Close.
func New(ep link.Endpoint, addr netip.Addr, opts Options) (*Host, error) {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return nil, fmt.Errorf("gvpeer: no address")
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	h := &Host{s: s, lep: newLinkEndpoint(ep), addr: addr, opts: opts}
	fail := func(what string, err tcpip.Error) (*Host, error) {
		s.Close()
		ep.Close()
		s.Wait()
		return nil, fmt.Errorf("gvpeer: %s: %v", what, err)
	}
	if err := h.setOptions(); err != nil {
		return fail("setting TCP options", err)
	}
	if err := s.CreateNIC(nicID, h.lep); err != nil {
		return fail("CreateNIC", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          netProto(addr),
		AddressWithPrefix: tcpAddr(addr).WithPrefix(),
	}
	if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		return fail("AddProtocolAddress", err)
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	h.lep.start()
	return h, nil
}

// setOptions sets gVisor's TCP options from h.opts, in this order, but
// for those whose field of Options is zero, meaning gVisor's default.
func (h *Host) setOptions() tcpip.Error {
	o := h.opts
	for _, opt := range []struct {
		set bool
		v   tcpip.SettableTransportProtocolOption
	}{
		{true, new(tcpip.TCPSACKEnabled(o.SACK))},
		{o.CongestionControl != "", new(tcpip.CongestionControlOption(o.CongestionControl))},
		{o.SendBuf > 0, &tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: o.SendBuf, Max: max(o.SendBuf, tcp.MaxBufferSize)}},
		{o.RecvBuf > 0, &tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: o.RecvBuf, Max: max(o.RecvBuf, tcp.MaxBufferSize)}},
		{true, new(tcpip.TCPModerateReceiveBufferOption(o.ModerateRecvBuf))},
		{o.TimeWait > 0, new(tcpip.TCPTimeWaitTimeoutOption(o.TimeWait))},
		{o.FinWait2 > 0, new(tcpip.TCPLingerTimeoutOption(o.FinWait2))},
		{o.MinRTO > 0, new(tcpip.TCPMinRTOOption(o.MinRTO))},
		{true, new(tcpip.TCPDelayEnabled(o.Nagle))},
	} {
		if !opt.set {
			continue
		}
		if err := h.s.SetTransportProtocolOption(tcp.ProtocolNumber, opt.v); err != nil {
			return err
		}
	}
	return nil
}

// Close aborts every endpoint (RST), closes the link and waits for gVisor's
// and the link reader's goroutines to stop.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.s.Close()
		h.s.RemoveNIC(nicID) // closes the link endpoint, which stops the reader
		h.lep.waitReader()
		h.s.Wait()
	})
	return nil
}

// Stats are a summary of gVisor's TCP counters and this host's link.
type Stats struct {
	ActiveOpens, PassiveOpens     uint64
	CurrentEstablished            uint64
	FailedConnectionAttempts      uint64
	SegmentsSent, SegmentsRcvd    uint64 // valid segments received
	InvalidSegments               uint64
	ChecksumErrors                uint64
	ResetsSent, ResetsRcvd        uint64
	Retransmits                   uint64 // segments retransmitted, all causes
	FastRetransmit                uint64
	FastRecovery, SACKRecovery    uint64
	TLPRecovery                   uint64
	Timeouts                      uint64 // RTO expirations
	SpuriousRecovery              uint64
	LinkPacketsIn, LinkPacketsOut uint64
	LinkDropped                   uint64 // not IPv4, no dispatcher, or over the MTU
	LinkReadErrors                uint64
	LinkWriteErrors               uint64
}

// Stats reads gVisor's TCP counters and the link counters.
func (h *Host) Stats() Stats {
	t := h.s.Stats().TCP
	return Stats{
		ActiveOpens:              t.ActiveConnectionOpenings.Value(),
		PassiveOpens:             t.PassiveConnectionOpenings.Value(),
		CurrentEstablished:       t.CurrentEstablished.Value(),
		FailedConnectionAttempts: t.FailedConnectionAttempts.Value(),
		SegmentsSent:             t.SegmentsSent.Value(),
		SegmentsRcvd:             t.ValidSegmentsReceived.Value(),
		InvalidSegments:          t.InvalidSegmentsReceived.Value(),
		ChecksumErrors:           t.ChecksumErrors.Value(),
		ResetsSent:               t.ResetsSent.Value(),
		ResetsRcvd:               t.ResetsReceived.Value(),
		Retransmits:              t.Retransmits.Value(),
		FastRetransmit:           t.FastRetransmit.Value(),
		FastRecovery:             t.FastRecovery.Value(),
		SACKRecovery:             t.SACKRecovery.Value(),
		TLPRecovery:              t.TLPRecovery.Value(),
		Timeouts:                 t.Timeouts.Value(),
		SpuriousRecovery:         t.SpuriousRecovery.Value(),
		LinkPacketsIn:            h.lep.packetsIn.Load(),
		LinkPacketsOut:           h.lep.packetsOut.Load(),
		LinkDropped:              h.lep.dropped.Load(),
		LinkReadErrors:           h.lep.readErrors.Load(),
		LinkWriteErrors:          h.lep.writeErrors.Load(),
	}
}

// Pair runs gVisor on both ends of a link.Pipe of the given MTU: a at
// addrA, b at addrB, both with opts. It is the gVisor-to-gVisor baseline.
func Pair(mtu int, addrA, addrB netip.Addr, opts Options) (a, b *Host, err error) {
	ea, eb := link.Pipe(mtu)
	if a, err = New(ea, addrA, opts); err != nil {
		eb.Close()
		return nil, nil, err
	}
	if b, err = New(eb, addrB, opts); err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// netProto is gVisor's network protocol for a's family.
func netProto(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

// tcpAddr is a in gVisor's form.
func tcpAddr(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}
