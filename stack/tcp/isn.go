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

// keyed writes a 16-byte secret and the 4-tuple into b (at least 28
// bytes): the input of the keyed hashes of ISNs (RFC 6528) and SYN cookies
// (RFC 4987).
func keyed(b []byte, secret *[16]byte, id ID) {
	copy(b[:16], secret[:])
	l, r := id.Local.Addr().As4(), id.Remote.Addr().As4()
	copy(b[16:], l[:])
	binary.BigEndian.PutUint16(b[20:], id.Local.Port())
	copy(b[22:], r[:])
	binary.BigEndian.PutUint16(b[26:], id.Remote.Port())
}

// ISN returns the initial sequence number for id at now.
func (g *ISNGenerator) ISN(id ID, now time.Time) seqnum.Value {
	var b [16 + 12]byte
	keyed(b[:], &g.secret, id)
	h := sha256.Sum256(b[:])
	f := binary.BigEndian.Uint32(h[:4])
	m := uint32(now.Sub(g.epoch) / (4 * time.Microsecond))
	return seqnum.Value(m + f)
}
