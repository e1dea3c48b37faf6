package tlslite

// Cipher suites: RFC 5246 §A.5 and RFC 5288 §3 (AES-GCM for TLS, the
// nonce: 4-byte implicit salt from the key block + 8-byte explicit part sent
// in each record), RFC 5289 §3.2 (ECDHE_RSA with AES-GCM).

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"slices"
)

// The suites tlslite implements (IANA TLS Cipher Suite registry).
const (
	TLS_RSA_WITH_AES_128_GCM_SHA256       uint16 = 0x009c // RFC 5288
	TLS_RSA_WITH_AES_256_GCM_SHA384       uint16 = 0x009d // RFC 5288
	TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 uint16 = 0xc02f // RFC 5289
	TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 uint16 = 0xc030 // RFC 5289
)

type cipherSuite struct {
	id     uint16
	name   string
	keyLen int         // AES key length
	hash   crypto.Hash // PRF and Finished hash
	ecdhe  bool        // ECDHE_RSA key exchange; false means RSA
}

var cipherSuites = []*cipherSuite{
	{id: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, name: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", keyLen: 16, hash: crypto.SHA256, ecdhe: true},
	{id: TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, name: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", keyLen: 32, hash: crypto.SHA384, ecdhe: true},
	{id: TLS_RSA_WITH_AES_128_GCM_SHA256, name: "TLS_RSA_WITH_AES_128_GCM_SHA256", keyLen: 16, hash: crypto.SHA256},
	{id: TLS_RSA_WITH_AES_256_GCM_SHA384, name: "TLS_RSA_WITH_AES_256_GCM_SHA384", keyLen: 32, hash: crypto.SHA384},
}

func suiteByID(id uint16) *cipherSuite {
	for _, s := range cipherSuites {
		if s.id == id {
			return s
		}
	}
	return nil
}

// CipherSuiteName returns the IANA name of a suite tlslite knows.
func CipherSuiteName(id uint16) string {
	if s := suiteByID(id); s != nil {
		return s.name
	}
	return "0x" + hex4(id)
}

func hex4(v uint16) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[v>>12], digits[v>>8&15], digits[v>>4&15], digits[v&15]})
}

// DefaultCipherSuites returns the default preference order: ECDHE first
// (forward secrecy), then RSA key exchange; AES-128 before AES-256 in each.
func DefaultCipherSuites() []uint16 {
	ids := make([]uint16, len(cipherSuites))
	for i, s := range cipherSuites {
		ids[i] = s.id
	}
	return ids
}

// enabledSuites is the configured list filtered by KeyExchange and by what
// we implement, in preference order.
func (c *Config) enabledSuites() []*cipherSuite {
	ids := c.CipherSuites
	if ids == nil {
		ids = DefaultCipherSuites()
	}
	var out []*cipherSuite
	for _, id := range ids {
		s := suiteByID(id)
		if s == nil || slices.Contains(out, s) {
			continue
		}
		if c.KeyExchange == KeyExchangeRSA && s.ecdhe || c.KeyExchange == KeyExchangeECDHE && !s.ecdhe {
			continue
		}
		out = append(out, s)
	}
	return out
}

// recordAEAD is one direction's AES-GCM state.
type recordAEAD struct {
	aead  cipher.AEAD
	nonce [12]byte // salt (4) || explicit (8), RFC 5288 §3
	ad    [13]byte // RFC 5246 §6.2.3.3 additional_data
}

func newRecordAEAD(key, iv []byte) (*recordAEAD, error) {
	if len(iv) != gcmImplicitNonce {
		return nil, errors.New("tlslite: GCM implicit IV must be 4 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	r := &recordAEAD{aead: aead}
	copy(r.nonce[:4], iv)
	return r, nil
}

// setAD fills additional_data = seq_num + TLSCompressed.type +
// TLSCompressed.version + TLSCompressed.length (RFC 5246 §6.2.3.3).
func (r *recordAEAD) setAD(seq uint64, typ recordType, n int) {
	binary.BigEndian.PutUint64(r.ad[:8], seq)
	r.ad[8] = byte(typ)
	r.ad[9] = 3
	r.ad[10] = 3
	r.ad[11] = byte(n >> 8)
	r.ad[12] = byte(n)
}

// seal appends one GCMCiphertext record (header, nonce_explicit, sealed
// payload) to out. The explicit nonce is the sequence number, which never
// repeats under one key (RFC 5288 §3 allows any unique value).
func (r *recordAEAD) seal(out []byte, seq uint64, typ recordType, payload []byte) []byte {
	clen := gcmExplicitNonce + len(payload) + gcmTagLen
	out = append(out, byte(typ), 3, 3, byte(clen>>8), byte(clen))
	binary.BigEndian.PutUint64(r.nonce[4:], seq)
	out = append(out, r.nonce[4:]...)
	r.setAD(seq, typ, len(payload))
	return r.aead.Seal(out, r.nonce[:], payload, r.ad[:])
}

var errBadRecordMAC = errors.New("tlslite: record authentication failed")

// open decrypts a whole record (header included) in place and returns the
// plaintext, which aliases rec.
func (r *recordAEAD) open(seq uint64, rec []byte) ([]byte, error) {
	body := rec[recordHeaderLen:]
	if len(body) < gcmExplicitNonce+gcmTagLen {
		return nil, errBadRecordMAC
	}
	copy(r.nonce[4:], body[:gcmExplicitNonce])
	ct := body[gcmExplicitNonce:]
	r.setAD(seq, recordType(rec[0]), len(ct)-gcmTagLen)
	r.ad[9], r.ad[10] = rec[1], rec[2]
	pt, err := r.aead.Open(ct[:0], r.nonce[:], ct, r.ad[:])
	if err != nil {
		return nil, errBadRecordMAC
	}
	return pt, nil
}

// OpenRecord decrypts one captured AES-GCM record for the labs: key is the
// client or server write key, iv the matching 4-byte write IV (see
// KeyMaterial), seq the record's sequence number in that direction (0 for
// the first record after ChangeCipherSpec, which is Finished), and record
// the whole record starting with its 5-byte header. It returns a fresh copy
// of the plaintext.
func OpenRecord(key, iv []byte, seq uint64, record []byte) ([]byte, error) {
	if len(record) < recordHeaderLen || int(record[3])<<8|int(record[4]) != len(record)-recordHeaderLen {
		return nil, errors.New("tlslite: record length does not match its header")
	}
	r, err := newRecordAEAD(key, iv)
	if err != nil {
		return nil, err
	}
	return r.open(seq, slices.Clone(record))
}

// SealRecord is the inverse of OpenRecord: it builds one AES-GCM record of
// the given content type (20-23) with explicit nonce = seq.
func SealRecord(key, iv []byte, seq uint64, contentType uint8, plaintext []byte) ([]byte, error) {
	r, err := newRecordAEAD(key, iv)
	if err != nil {
		return nil, err
	}
	return r.seal(nil, seq, recordType(contentType), plaintext), nil
}
