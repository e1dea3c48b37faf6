package link

// Tap records every packet through an Endpoint as pcapng, the format of
// Wireshark, tshark and tcpdump -r.
//
// Heads up: pcapng is specified in draft-ietf-opsawg-pcapng
// (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html). We
// write one little-endian section: a Section Header Block (§4.1), one
// Interface Description Block (§4.2) with if_name, if_description and
// if_tsresol = 9 (nanoseconds), then one Enhanced Packet Block (§4.3) per
// packet with epb_flags (§4.3.1) carrying the direction: inbound for what
// ReadBatch returned, outbound for what WriteBatch accepted. Link types are
// from https://www.tcpdump.org/linktypes.html.

import (
	"encoding/binary"
	"io"
	"sync"
	"time"

	"ustack/stack/clock"
)

// LinkType is a pcapng/pcap link-layer header type.
type LinkType uint16

const (
	// LinkTypeRaw is LINKTYPE_RAW (101): raw IPv4 or IPv6, version nibble first.
	LinkTypeRaw LinkType = 101
	// LinkTypeIPv4 is LINKTYPE_IPV4 (228): raw IPv4 only.
	LinkTypeIPv4 LinkType = 228
)

// pcapng block types and option codes.
const (
	pcapngSHB = 0x0A0D0D0A
	pcapngIDB = 0x00000001
	pcapngEPB = 0x00000006

	pcapngByteOrderMagic = 0x1A2B3C4D

	optEndOfOpt     = 0
	optSHBUserAppl  = 4
	optIfName       = 2
	optIfDesc       = 3
	optIfTSResol    = 9
	optEPBFlags     = 2
	epbFlagInbound  = 1 // epb_flags bits 0-1: 01 inbound
	epbFlagOutbound = 2 //                     10 outbound
)

// TapOption configures Tap.
type TapOption func(*tapConfig)

type tapConfig struct {
	now      func() time.Time
	name     string
	desc     string
	linkType LinkType
}

// TapClock sets the clock the timestamps come from (default clock.Real's
// Now, which a stepped system clock does not move), so a
// capture of a virtual-time test carries virtual time. Times before 1970
// are recorded as 1970.
func TapClock(now func() time.Time) TapOption { return func(c *tapConfig) { c.now = now } }

// TapInterface sets the interface name and description recorded in the
// capture (default "ustack", "ustack link").
func TapInterface(name, description string) TapOption {
	return func(c *tapConfig) { c.name, c.desc = name, description }
}

// TapLinkType sets the link type (default LinkTypeRaw).
func TapLinkType(lt LinkType) TapOption { return func(c *tapConfig) { c.linkType = lt } }

// TapEndpoint is an Endpoint that records what passes through it; see Tap.
type TapEndpoint struct {
	ep  Endpoint
	now func() time.Time

	mu      sync.Mutex // one writer: serializes ReadBatch and WriteBatch records
	w       io.Writer
	scratch []byte
	err     error // first write error; recording stops there
}

var _ Endpoint = (*TapEndpoint)(nil)

// Tap wraps ep so that every packet ReadBatch returns and every packet
// WriteBatch accepts is written to w as pcapng, one w.Write per batch. It
// writes the section and interface headers at once and returns the error if
// that fails. A later write error stops the recording (see Err) but not the
// link. Close closes ep, not w.
func Tap(ep Endpoint, w io.Writer, opts ...TapOption) (*TapEndpoint, error) {
	cfg := tapConfig{now: clock.Real{}.Now, name: "ustack", desc: "ustack link", linkType: LinkTypeRaw}
	for _, o := range opts {
		o(&cfg)
	}
	t := &TapEndpoint{ep: ep, now: cfg.now, w: w}

	b := t.scratch[:0]
	// Section Header Block (§4.1).
	start := len(b)
	b = le32(b, pcapngSHB)
	b = le32(b, 0) // total length, patched below
	b = le32(b, pcapngByteOrderMagic)
	b = le16(b, 1) // major version
	b = le16(b, 0) // minor version
	// Section length: unspecified.
	b = binary.LittleEndian.AppendUint64(b, ^uint64(0))
	b = option(b, optSHBUserAppl, []byte("ustack"))
	b = option(b, optEndOfOpt, nil)
	b = endBlock(b, start)
	// Interface Description Block (§4.2): interface 0.
	start = len(b)
	b = le32(b, pcapngIDB)
	b = le32(b, 0)
	b = le16(b, uint16(cfg.linkType))
	b = le16(b, 0) // reserved
	b = le32(b, 0) // snaplen: no limit
	b = option(b, optIfName, []byte(cfg.name))
	b = option(b, optIfDesc, []byte(cfg.desc))
	b = option(b, optIfTSResol, []byte{9}) // 10^-9 s
	b = option(b, optEndOfOpt, nil)
	b = endBlock(b, start)

	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	t.scratch = b[:0]
	return t, nil
}

// ReadBatch implements Endpoint, recording the packets read as inbound.
func (t *TapEndpoint) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.ep.ReadBatch(bufs, sizes, offset)
	if n > 0 {
		t.record(bufs[:n], sizes, offset, epbFlagInbound)
	}
	return n, err
}

// WriteBatch implements Endpoint, recording the packets accepted as outbound.
// Packets are recorded before they are written: the peer can answer inside
// the write, and its answer must not precede the packet in the capture.
func (t *TapEndpoint) WriteBatch(bufs [][]byte, offset int) (int, error) {
	if len(bufs) > 0 {
		t.record(bufs, nil, offset, epbFlagOutbound)
	}
	return t.ep.WriteBatch(bufs, offset)
}

// BatchSize implements Endpoint.
func (t *TapEndpoint) BatchSize() int { return t.ep.BatchSize() }

// MTU implements Endpoint.
func (t *TapEndpoint) MTU() int { return t.ep.MTU() }

// Close implements Endpoint: it closes the wrapped endpoint.
func (t *TapEndpoint) Close() error { return t.ep.Close() }

// Err returns the first error writing the capture, if any.
func (t *TapEndpoint) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// record writes one Enhanced Packet Block (§4.3) per packet: bufs[i][offset:]
// with length sizes[i], or all of it if sizes is nil.
func (t *TapEndpoint) record(bufs [][]byte, sizes []int, offset int, flags uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return
	}
	// Read the clock under the lock so timestamps never go backwards in the file.
	var ts uint64
	if ns := t.now().UnixNano(); ns > 0 {
		ts = uint64(ns)
	}
	b := t.scratch[:0]
	for i, buf := range bufs {
		pkt := buf[offset:]
		if sizes != nil {
			pkt = pkt[:sizes[i]]
		}
		start := len(b)
		b = le32(b, pcapngEPB)
		b = le32(b, 0)
		b = le32(b, 0) // interface 0
		b = le32(b, uint32(ts>>32))
		b = le32(b, uint32(ts))
		b = le32(b, uint32(len(pkt))) // captured length
		b = le32(b, uint32(len(pkt))) // original length
		b = append(b, pkt...)
		b = pad4(b)
		b = option(b, optEPBFlags, binary.LittleEndian.AppendUint32(nil, flags))
		b = option(b, optEndOfOpt, nil)
		b = endBlock(b, start)
	}
	if _, err := t.w.Write(b); err != nil {
		t.err = err
	}
	t.scratch = b[:0]
}

func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// option appends one option (§3.5): code, length, value padded to 32 bits.
func option(b []byte, code uint16, v []byte) []byte {
	b = le16(b, code)
	b = le16(b, uint16(len(v)))
	return pad4(append(b, v...))
}

// endBlock appends the trailing total length of the block that starts at
// b[start:] and patches the leading one.
func endBlock(b []byte, start int) []byte {
	n := uint32(len(b) - start + 4)
	binary.LittleEndian.PutUint32(b[start+4:], n)
	return le32(b, n)
}
