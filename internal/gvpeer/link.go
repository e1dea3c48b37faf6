package gvpeer

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"ustack/stack/link"
)

// linkEndpoint is gVisor's view of a ustack link.Endpoint: a stack.LinkEndpoint
// without a link-layer header, carrying raw IPv4 and IPv6 packets.
//
// Outbound, WritePackets copies each packet into a pooled buffer after
// link.Headroom and queues it; the first writer to find no flush under way
// becomes the flusher and writes everything queued, including what other
// writers queue meanwhile, with as few WriteBatch calls as the link's
// BatchSize allows. No goroutine hop, and concurrent senders share batches.
//
// Inbound, one goroutine (readLoop) reads batches and delivers each packet.
type linkEndpoint struct {
	ep  link.Endpoint
	mtu uint32
	bs  int

	dmu        sync.RWMutex
	dispatcher stack.NetworkDispatcher

	qmu      sync.Mutex // guards pending, spare, free, flushing
	pending  [][]byte
	spare    [][]byte
	free     [][]byte
	flushing bool

	readDone chan struct{}
	started  atomic.Bool

	packetsIn, packetsOut, writeErrors, readErrors, dropped atomic.Uint64
}

var _ stack.LinkEndpoint = (*linkEndpoint)(nil)

func newLinkEndpoint(ep link.Endpoint) *linkEndpoint {
	return &linkEndpoint{
		ep:       ep,
		mtu:      uint32(ep.MTU()),
		bs:       max(ep.BatchSize(), 1),
		readDone: make(chan struct{}),
	}
}

// start launches the reader. It is separate from Attach so that the NIC and
// its address exist before the first packet is delivered.
func (e *linkEndpoint) start() {
	if e.started.CompareAndSwap(false, true) {
		go e.readLoop()
	}
}

func (e *linkEndpoint) readLoop() {
	defer close(e.readDone)
	bufs, sizes := link.ReadBuffers(e.bs, max(int(e.mtu), link.MaxPacket))
	for {
		n, err := e.ep.ReadBatch(bufs, sizes, link.Headroom)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.readErrors.Add(1)
			continue
		}
		d := e.attached()
		for i := 0; i < n; i++ {
			p := bufs[i][link.Headroom : link.Headroom+sizes[i]]
			proto := header.IPv4ProtocolNumber
			if len(p) > 0 && p[0]>>4 == header.IPv6Version {
				proto = header.IPv6ProtocolNumber
			}
			if d == nil || len(p) == 0 || p[0]>>4 != header.IPv4Version && proto == header.IPv4ProtocolNumber {
				e.dropped.Add(1)
				continue
			}
			e.packetsIn.Add(1)
			// MakeWithData copies p into a pooled gVisor chunk: gVisor may
			// keep the packet (receive queue, out-of-order queue) while bufs
			// is reused for the next batch.
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
			d.DeliverNetworkPacket(proto, pkt)
			pkt.DecRef()
		}
	}
}

// WritePackets implements stack.LinkWriter.
func (e *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	e.qmu.Lock()
	for _, pkt := range pkts.AsSlice() {
		size := pkt.Size()
		if size > int(e.mtu) {
			e.dropped.Add(1)
			continue
		}
		buf := e.getBufLocked(link.Headroom + size)
		dst := buf[link.Headroom:]
		vl, off := pkt.AsViewList()
		w := 0
		for v := vl.Front(); v != nil && w < size; v = v.Next() {
			s := v.AsSlice()
			if off >= len(s) {
				off -= len(s)
				continue
			}
			w += copy(dst[w:], s[off:])
			off = 0
		}
		e.pending = append(e.pending, buf[:link.Headroom+w])
		n++
	}
	if e.flushing {
		e.qmu.Unlock()
		return n, nil
	}
	e.flushing = true
	for len(e.pending) > 0 {
		q := e.pending
		e.pending = e.spare[:0]
		e.spare = nil
		e.qmu.Unlock()
		for i := 0; i < len(q); i += e.bs {
			end := min(i+e.bs, len(q))
			if _, err := e.ep.WriteBatch(q[i:end], link.Headroom); err != nil {
				e.writeErrors.Add(1)
			}
		}
		e.packetsOut.Add(uint64(len(q)))
		e.qmu.Lock()
		for i, b := range q {
			if len(e.free) < 1024 {
				e.free = append(e.free, b[:cap(b)])
			}
			q[i] = nil
		}
		e.spare = q[:0]
	}
	e.flushing = false
	e.qmu.Unlock()
	return n, nil
}

func (e *linkEndpoint) getBufLocked(n int) []byte {
	if k := len(e.free); k > 0 {
		b := e.free[k-1]
		e.free = e.free[:k-1]
		if cap(b) >= n {
			return b[:n]
		}
	}
	return make([]byte, n, link.Headroom+int(e.mtu))
}

// MTU implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) MTU() uint32 { return e.mtu }

// SetMTU implements stack.NetworkLinkEndpoint; the link's MTU is fixed.
func (e *linkEndpoint) SetMTU(uint32) {}

// MaxHeaderLength implements stack.NetworkLinkEndpoint: no link header.
func (e *linkEndpoint) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.NetworkLinkEndpoint: a point-to-point link.
func (e *linkEndpoint) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.NetworkLinkEndpoint. Checksums are computed
// and verified by gVisor, so ustack sees ordinary packets.
func (e *linkEndpoint) Capabilities() stack.LinkEndpointCapabilities { return 0 }

// Attach implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	e.dmu.Lock()
	e.dispatcher = d
	e.dmu.Unlock()
}

// IsAttached implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) IsAttached() bool { return e.attached() != nil }

// attached returns the dispatcher Attach set, or nil.
func (e *linkEndpoint) attached() stack.NetworkDispatcher {
	e.dmu.RLock()
	defer e.dmu.RUnlock()
	return e.dispatcher
}

// Wait implements stack.NetworkLinkEndpoint. It does not wait: gVisor's
// Stack.Wait calls it before it closes the endpoint, and the reader only ends
// once the link is closed. Host.Close closes, then calls waitReader.
func (e *linkEndpoint) Wait() {}

// waitReader waits for the reader to end, after Close.
func (e *linkEndpoint) waitReader() {
	if e.started.Load() {
		<-e.readDone
	}
}

// ARPHardwareType implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.NetworkLinkEndpoint: no link header.
func (e *linkEndpoint) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.NetworkLinkEndpoint: no link header.
func (e *linkEndpoint) ParseHeader(*stack.PacketBuffer) bool { return true }

// Close implements stack.NetworkLinkEndpoint: it closes the link, which
// stops the reader.
func (e *linkEndpoint) Close() { e.ep.Close() }

// SetOnCloseAction implements stack.NetworkLinkEndpoint.
func (e *linkEndpoint) SetOnCloseAction(func()) {}
