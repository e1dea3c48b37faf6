package tcp

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"time"

	"ustack/stack/seqnum"
)

// ISNGenerator picks initial sequence numbers as RFC 6528 §3 (and RFC 9293
// §3.4.1) say: ISN = M + F(localip, localport, remoteip, remoteport,
// secretkey), where M is a timer ticking every 4 microseconds and F a keyed
// hash, so that ISNs of one 4-tuple advance with time and cannot be guessed
// off-path.
type ISNGenerator struct {
	secret [16]byte
	epoch  time.Time
}

// NewISNGenerator draws the secret key from rand; epoch anchors M.
func NewISNGenerator(rand io.Reader, epoch time.Time) (*ISNGenerator, error) {
	g := &ISNGenerator{epoch: epoch}
	if _, err := io.ReadFull(rand, g.secret[:]); err != nil {
		return nil, err
	}
	return g, nil
}

// keyedMax is the most keyed writes: the secret and an IPv6 4-tuple.
const keyedMax = 16 + 2*(16+2)

// keyed writes a 16-byte secret and the 4-tuple into b (at least keyedMax
// bytes) and returns the length written: 28 for IPv4 (4-byte addresses),
// 52 for IPv6 (16-byte ones). It is the input of the keyed hashes of ISNs
// (RFC 6528) and SYN cookies (RFC 4987).
func keyed(b []byte, secret *[16]byte, id ID) int {
	copy(b[:16], secret[:])
	la, ra := id.Local.Addr(), id.Remote.Addr()
	if la.Unmap().Is4() && ra.Unmap().Is4() {
		l, r := la.As4(), ra.As4()
		copy(b[16:], l[:])
		binary.BigEndian.PutUint16(b[20:], id.Local.Port())
		copy(b[22:], r[:])
		binary.BigEndian.PutUint16(b[26:], id.Remote.Port())
		return 28
	}
	l, r := la.As16(), ra.As16()
	copy(b[16:], l[:])
	binary.BigEndian.PutUint16(b[32:], id.Local.Port())
	copy(b[34:], r[:])
	binary.BigEndian.PutUint16(b[50:], id.Remote.Port())
	return keyedMax
}

// ISN returns the initial sequence number for id at now.
func (g *ISNGenerator) ISN(id ID, now time.Time) seqnum.Value {
	var b [keyedMax]byte
	n := keyed(b[:], &g.secret, id)
	h := sha256.Sum256(b[:n])
	f := binary.BigEndian.Uint32(h[:4])
	m := uint32(now.Sub(g.epoch) / (4 * time.Microsecond))
	return seqnum.Value(m + f)
}
