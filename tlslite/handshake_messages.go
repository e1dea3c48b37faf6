package tlslite

// Handshake messages, RFC 5246 §7.4 (structures in §A.4), with the
// extensions of RFC 6066 §3, RFC 7301 §3.1, RFC 7627 §5.1, RFC 5746 §3.2,
// RFC 5077 §3.2, RFC 8422 §5.1, RFC 8446 §4.2.1. Each message is plain data
// with marshal (the whole message including its 4-byte header) and
// unmarshal (from the whole message); unmarshal returns false on any
// malformation, which the caller turns into decode_error.

import (
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

func readUint8LengthPrefixed(s *cryptobyte.String, out *[]byte) bool {
	return s.ReadUint8LengthPrefixed((*cryptobyte.String)(out))
}

func readUint16LengthPrefixed(s *cryptobyte.String, out *[]byte) bool {
	return s.ReadUint16LengthPrefixed((*cryptobyte.String)(out))
}

func readUint24LengthPrefixed(s *cryptobyte.String, out *[]byte) bool {
	return s.ReadUint24LengthPrefixed((*cryptobyte.String)(out))
}

// handshakeMessage is implemented by every message type.
type handshakeMessage interface {
	marshal() ([]byte, error)
	unmarshal([]byte) bool
}

// withHeader builds a Handshake struct (RFC 5246 §7.4): msg_type, uint24
// length, body.
func withHeader(typ uint8, body func(b *cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(typ)
	b.AddUint24LengthPrefixed(body)
	return b.Bytes()
}

// readHeader checks msg_type and length and returns the body.
func readHeader(data []byte, typ uint8) (cryptobyte.String, bool) {
	s := cryptobyte.String(data)
	var t uint8
	var body cryptobyte.String
	if !s.ReadUint8(&t) || t != typ || !s.ReadUint24LengthPrefixed(&body) || !s.Empty() {
		return nil, false
	}
	return body, true
}

// helloMsg is what ClientHello (RFC 5246 §7.4.1.2) and ServerHello
// (§7.4.1.3) share: the version, random and session_id they open with and
// the extensions both may carry.
type helloMsg struct {
	vers      uint16
	random    []byte
	sessionID []byte

	ecPointFormats               []uint8 // RFC 4492 §5.1.2
	extendedMasterSecret         bool    // RFC 7627 §5.1
	secureRenegotiationSupported bool    // RFC 5746 §3.2
	secureRenegotiation          []byte
	ticketSupported              bool     // RFC 5077 §3.2
	extensions                   []uint16 // every extension type seen, in order
}

// marshalHello builds a hello of type typ: version, random and session_id,
// what middle adds, then the extensions block that exts fills.
func (m *helloMsg) marshalHello(typ uint8, middle, exts func(b *cryptobyte.Builder)) ([]byte, error) {
	return withHeader(typ, func(b *cryptobyte.Builder) {
		b.AddUint16(m.vers)
		b.AddBytes(m.random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.sessionID) })
		middle(b)
		b.AddUint16LengthPrefixed(exts)
	})
}

// readHello checks the header of a hello of type typ and reads version,
// random and session_id (at most 32 bytes); it returns the rest.
func (m *helloMsg) readHello(data []byte, typ uint8) (cryptobyte.String, bool) {
	s, ok := readHeader(data, typ)
	ok = ok && s.ReadUint16(&m.vers) && s.ReadBytes(&m.random, 32) &&
		readUint8LengthPrefixed(&s, &m.sessionID) && len(m.sessionID) <= 32
	return s, ok
}

// addECPointFormats adds ec_point_formats if set.
func (m *helloMsg) addECPointFormats(b *cryptobyte.Builder) {
	if len(m.ecPointFormats) > 0 {
		addExtension(b, extECPointFormats, func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.ecPointFormats) })
		})
	}
}

// addLastExtensions adds the extensions both hellos end with, those that
// are set: extended_master_secret, session_ticket carrying ticket (empty
// in ServerHello, RFC 5077 §3.2) and renegotiation_info carrying
// renegotiated_connection (RFC 5746 §3.2).
func (m *helloMsg) addLastExtensions(b *cryptobyte.Builder, ticket []byte) {
	if m.extendedMasterSecret {
		addEmptyExtension(b, extExtendedMasterSecret)
	}
	if m.ticketSupported {
		addExtension(b, extSessionTicket, func(b *cryptobyte.Builder) { b.AddBytes(ticket) })
	}
	if m.secureRenegotiationSupported {
		addRenegotiationInfo(b, m.secureRenegotiation)
	}
}

// unmarshalExtension parses the body d of an extension both hellos read
// alike, consuming all of it, and skips an unknown one: RFC 5246 §7.4.1.4
// lets a server ignore it, and a client refuses what it did not offer
// itself. A session_ticket body is left for ClientHello to keep; in
// ServerHello it must be empty.
func (m *helloMsg) unmarshalExtension(ext uint16, d *cryptobyte.String) bool {
	switch ext {
	case extECPointFormats:
		return readUint8LengthPrefixed(d, &m.ecPointFormats) && len(m.ecPointFormats) > 0
	case extExtendedMasterSecret:
		m.extendedMasterSecret = true
	case extSessionTicket:
		m.ticketSupported = true
	case extRenegotiationInfo:
		m.secureRenegotiationSupported = readUint8LengthPrefixed(d, &m.secureRenegotiation)
		return m.secureRenegotiationSupported
	default:
		*d = nil
	}
	return true
}

// clientHelloMsg is RFC 5246 §7.4.1.2.
type clientHelloMsg struct {
	helloMsg
	cipherSuites       []uint16
	compressionMethods []uint8

	serverName        string            // RFC 6066 §3
	supportedGroups   []CurveID         // RFC 8422 §5.1.1
	signatureSchemes  []SignatureScheme // RFC 5246 §7.4.1.4.1
	alpnProtocols     []string          // RFC 7301 §3.1
	sessionTicket     []byte            // RFC 5077 §3.2
	supportedVersions []uint16          // RFC 8446 §4.2.1
}

func (m *clientHelloMsg) marshal() ([]byte, error) {
	return m.marshalHello(typeClientHello, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { addUint16s(b, m.cipherSuites) })
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.compressionMethods) })
	}, m.marshalExtensions)
}

// marshalExtensions adds the extensions that are set, in a fixed order.
func (m *clientHelloMsg) marshalExtensions(b *cryptobyte.Builder) {
	if m.serverName != "" {
		// RFC 6066 §3: a ServerNameList holding one host_name.
		addExtension(b, extServerName, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint8(0) // host_name
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.serverName)) })
			})
		})
	}
	addUint16sExtension(b, extSupportedGroups, m.supportedGroups)
	m.addECPointFormats(b)
	addUint16sExtension(b, extSignatureAlgorithms, m.signatureSchemes)
	if len(m.supportedVersions) > 0 {
		addExtension(b, extSupportedVersions, func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { addUint16s(b, m.supportedVersions) })
		})
	}
	if len(m.alpnProtocols) > 0 {
		addExtension(b, extALPN, func(b *cryptobyte.Builder) { addALPNList(b, m.alpnProtocols) })
	}
	m.addLastExtensions(b, m.sessionTicket)
}

func (m *clientHelloMsg) unmarshal(data []byte) bool {
	*m = clientHelloMsg{}
	s, ok := m.readHello(data, typeClientHello)
	var suites cryptobyte.String
	if !ok || !s.ReadUint16LengthPrefixed(&suites) || len(suites) == 0 || len(suites)%2 != 0 {
		return false
	}
	for !suites.Empty() {
		var id uint16
		suites.ReadUint16(&id)
		if id == scsvRenegotiation {
			m.secureRenegotiationSupported = true
		}
		m.cipherSuites = append(m.cipherSuites, id)
	}
	if !readUint8LengthPrefixed(&s, &m.compressionMethods) || len(m.compressionMethods) == 0 {
		return false
	}
	return readExtensions(&s, &m.extensions, m.unmarshalExtension)
}

// unmarshalExtension parses the body d of one ClientHello extension of
// type ext, consuming all of it.
func (m *clientHelloMsg) unmarshalExtension(ext uint16, d *cryptobyte.String) bool {
	var list cryptobyte.String
	switch ext {
	case extServerName:
		return m.unmarshalServerName(d)
	case extSupportedGroups:
		return d.ReadUint16LengthPrefixed(&list) && readUint16s(list, &m.supportedGroups)
	case extSignatureAlgorithms:
		return d.ReadUint16LengthPrefixed(&list) && readUint16s(list, &m.signatureSchemes)
	case extALPN:
		return m.unmarshalALPN(d)
	case extSessionTicket:
		m.sessionTicket = []byte(*d) // and ticketSupported, below
		*d = nil
	case extSupportedVersions:
		return d.ReadUint8LengthPrefixed(&list) && readUint16s(list, &m.supportedVersions)
	}
	return m.helloMsg.unmarshalExtension(ext, d)
}

// unmarshalServerName parses a ServerNameList (RFC 6066 §3), keeping its
// one host_name; other name types are skipped.
func (m *clientHelloMsg) unmarshalServerName(d *cryptobyte.String) bool {
	var list cryptobyte.String
	if !d.ReadUint16LengthPrefixed(&list) || list.Empty() {
		return false
	}
	for !list.Empty() {
		var typ uint8
		var name cryptobyte.String
		if !list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&name) {
			return false
		}
		if typ != 0 {
			continue
		}
		if m.serverName != "" || len(name) == 0 {
			return false
		}
		m.serverName = string(name)
	}
	return true
}

// unmarshalALPN parses a ProtocolNameList (RFC 7301 §3.1): at least one
// name, none empty.
func (m *clientHelloMsg) unmarshalALPN(d *cryptobyte.String) bool {
	var list cryptobyte.String
	if !d.ReadUint16LengthPrefixed(&list) || list.Empty() {
		return false
	}
	for !list.Empty() {
		var p cryptobyte.String
		if !list.ReadUint8LengthPrefixed(&p) || p.Empty() {
			return false
		}
		m.alpnProtocols = append(m.alpnProtocols, string(p))
	}
	return true
}

// serverHelloMsg is RFC 5246 §7.4.1.3.
type serverHelloMsg struct {
	helloMsg
	cipherSuite       uint16
	compressionMethod uint8
	serverNameAck     bool   // empty server_name, RFC 6066 §3
	alpnProtocol      string // RFC 7301 §3.1
}

func (m *serverHelloMsg) marshal() ([]byte, error) {
	return m.marshalHello(typeServerHello, func(b *cryptobyte.Builder) {
		b.AddUint16(m.cipherSuite)
		b.AddUint8(m.compressionMethod)
	}, m.marshalExtensions)
}

// marshalExtensions adds the extensions that are set, in a fixed order.
func (m *serverHelloMsg) marshalExtensions(b *cryptobyte.Builder) {
	if m.serverNameAck {
		addEmptyExtension(b, extServerName)
	}
	m.addECPointFormats(b)
	if m.alpnProtocol != "" {
		addExtension(b, extALPN, func(b *cryptobyte.Builder) { addALPNList(b, []string{m.alpnProtocol}) })
	}
	m.addLastExtensions(b, nil)
}

func (m *serverHelloMsg) unmarshal(data []byte) bool {
	*m = serverHelloMsg{}
	s, ok := m.readHello(data, typeServerHello)
	return ok && s.ReadUint16(&m.cipherSuite) && s.ReadUint8(&m.compressionMethod) &&
		readExtensions(&s, &m.extensions, m.unmarshalExtension)
}

// unmarshalExtension parses the body d of one ServerHello extension of
// type ext, consuming all of it.
func (m *serverHelloMsg) unmarshalExtension(ext uint16, d *cryptobyte.String) bool {
	switch ext {
	case extServerName:
		m.serverNameAck = true
		return true
	case extALPN:
		// RFC 7301 §3.1: exactly one protocol name.
		var list, p cryptobyte.String
		if !d.ReadUint16LengthPrefixed(&list) || !list.ReadUint8LengthPrefixed(&p) || p.Empty() || !list.Empty() {
			return false
		}
		m.alpnProtocol = string(p)
		return true
	}
	return m.helloMsg.unmarshalExtension(ext, d)
}

// Extension helpers shared by the hellos.

// readExtensions parses the optional extensions block that ends a
// ClientHello or ServerHello (RFC 5246 §7.4.1.2, §7.4.1.3): it must be all
// that is left of s, each type may occur once (RFC 5246 §7.4.1.4) and is
// appended to *seen, and each body goes to parse, which must consume it
// all.
func readExtensions(s *cryptobyte.String, seen *[]uint16, parse func(ext uint16, d *cryptobyte.String) bool) bool {
	if s.Empty() {
		return true // RFC 5246 §7.4.1.2: extensions are optional
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	for !exts.Empty() {
		var ext uint16
		var d cryptobyte.String
		if !exts.ReadUint16(&ext) || !exts.ReadUint16LengthPrefixed(&d) {
			return false
		}
		if slices.Contains(*seen, ext) {
			return false
		}
		*seen = append(*seen, ext)
		if !parse(ext, &d) || !d.Empty() {
			return false
		}
	}
	return true
}

// readUint16s appends the 16-bit values of list, which must be non-empty
// and of even length, to out.
func readUint16s[T ~uint16](list cryptobyte.String, out *[]T) bool {
	if list.Empty() || len(list)%2 != 0 {
		return false
	}
	for !list.Empty() {
		var v uint16
		list.ReadUint16(&v)
		*out = append(*out, T(v))
	}
	return true
}

// addUint16s adds each value as a uint16, without a length prefix.
func addUint16s[T ~uint16](b *cryptobyte.Builder, vs []T) {
	for _, v := range vs {
		b.AddUint16(uint16(v))
	}
}

// addUint16sExtension adds extension ext holding vs with a uint16 length
// (supported_groups, signature_algorithms), unless vs is empty.
func addUint16sExtension[T ~uint16](b *cryptobyte.Builder, ext uint16, vs []T) {
	if len(vs) > 0 {
		addExtension(b, ext, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { addUint16s(b, vs) })
		})
	}
}

// addExtension adds an Extension (RFC 5246 §7.4.1.4): its type and its
// length-prefixed body.
func addExtension(b *cryptobyte.Builder, ext uint16, body func(b *cryptobyte.Builder)) {
	b.AddUint16(ext)
	b.AddUint16LengthPrefixed(body)
}

// addEmptyExtension adds an extension whose body is empty.
func addEmptyExtension(b *cryptobyte.Builder, ext uint16) {
	b.AddUint16(ext)
	b.AddUint16(0)
}

// addALPNList adds a ProtocolNameList (RFC 7301 §3.1).
func addALPNList(b *cryptobyte.Builder, protos []string) {
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, p := range protos {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
		}
	})
}

// addRenegotiationInfo adds renegotiation_info (RFC 5746 §3.2) carrying
// renegotiated_connection.
func addRenegotiationInfo(b *cryptobyte.Builder, renegotiated []byte) {
	addExtension(b, extRenegotiationInfo, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(renegotiated) })
	})
}

// certificateMsg is RFC 5246 §7.4.2.
type certificateMsg struct {
	certificates [][]byte
}

func (m *certificateMsg) marshal() ([]byte, error) {
	return withHeader(typeCertificate, func(b *cryptobyte.Builder) {
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, c := range m.certificates {
				b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c) })
			}
		})
	})
}

func (m *certificateMsg) unmarshal(data []byte) bool {
	*m = certificateMsg{}
	s, ok := readHeader(data, typeCertificate)
	if !ok {
		return false
	}
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return false
	}
	for !list.Empty() {
		var c []byte
		if !readUint24LengthPrefixed(&list, &c) || len(c) == 0 {
			return false
		}
		m.certificates = append(m.certificates, c)
	}
	return true
}

// serverKeyExchangeMsg is RFC 8422 §5.4 (ECDHE_RSA only): ServerECDHParams
// (curve_type named_curve, the group, the point) and a digitally-signed
// struct with its SignatureAndHashAlgorithm (RFC 5246 §4.7, §7.4.3).
type serverKeyExchangeMsg struct {
	curve     CurveID
	publicKey []byte
	sigScheme SignatureScheme
	signature []byte
}

const curveTypeNamedCurve = 3 // RFC 8422 §5.4 ECCurveType named_curve

// params returns ServerECDHParams, the part covered by the signature.
func (m *serverKeyExchangeMsg) params() []byte {
	p := make([]byte, 0, 4+len(m.publicKey))
	p = append(p, curveTypeNamedCurve, byte(m.curve>>8), byte(m.curve), byte(len(m.publicKey)))
	return append(p, m.publicKey...)
}

func (m *serverKeyExchangeMsg) marshal() ([]byte, error) {
	return withHeader(typeServerKeyExchange, func(b *cryptobyte.Builder) {
		b.AddBytes(m.params())
		b.AddUint16(uint16(m.sigScheme))
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.signature) })
	})
}

func (m *serverKeyExchangeMsg) unmarshal(data []byte) bool {
	*m = serverKeyExchangeMsg{}
	s, ok := readHeader(data, typeServerKeyExchange)
	if !ok {
		return false
	}
	var ct uint8
	var curve, scheme uint16
	if !s.ReadUint8(&ct) || ct != curveTypeNamedCurve || !s.ReadUint16(&curve) ||
		!readUint8LengthPrefixed(&s, &m.publicKey) || len(m.publicKey) == 0 ||
		!s.ReadUint16(&scheme) || !readUint16LengthPrefixed(&s, &m.signature) || !s.Empty() {
		return false
	}
	m.curve, m.sigScheme = CurveID(curve), SignatureScheme(scheme)
	return true
}

// serverHelloDoneMsg is RFC 5246 §7.4.5 (empty body).
type serverHelloDoneMsg struct{}

func (m *serverHelloDoneMsg) marshal() ([]byte, error) {
	return []byte{typeServerHelloDone, 0, 0, 0}, nil
}

func (m *serverHelloDoneMsg) unmarshal(data []byte) bool {
	s, ok := readHeader(data, typeServerHelloDone)
	return ok && s.Empty()
}

// clientKeyExchangeMsg is RFC 5246 §7.4.7. Its body depends on the key
// exchange: RSA sends EncryptedPreMasterSecret as opaque<0..2^16-1>
// (§7.4.7.1), ECDHE sends ClientECDiffieHellmanPublic as opaque<1..2^8-1>
// (RFC 8422 §5.7). The body is kept raw; the key agreement parses it.
type clientKeyExchangeMsg struct {
	body []byte
}

func (m *clientKeyExchangeMsg) marshal() ([]byte, error) {
	return withHeader(typeClientKeyExchange, func(b *cryptobyte.Builder) { b.AddBytes(m.body) })
}

func (m *clientKeyExchangeMsg) unmarshal(data []byte) bool {
	s, ok := readHeader(data, typeClientKeyExchange)
	if !ok {
		return false
	}
	m.body = []byte(s)
	return true
}

// rsaCiphertext parses the RSA body.
func (m *clientKeyExchangeMsg) rsaCiphertext() ([]byte, bool) {
	return m.vector(readUint16LengthPrefixed)
}

// ecdhPublic parses the ECDHE body.
func (m *clientKeyExchangeMsg) ecdhPublic() ([]byte, bool) {
	return m.vector(readUint8LengthPrefixed)
}

// vector parses a body that is one non-empty vector, read with read.
func (m *clientKeyExchangeMsg) vector(read func(*cryptobyte.String, *[]byte) bool) ([]byte, bool) {
	s := cryptobyte.String(m.body)
	var v []byte
	if !read(&s, &v) || !s.Empty() || len(v) == 0 {
		return nil, false
	}
	return v, true
}

// finishedMsg is RFC 5246 §7.4.9.
type finishedMsg struct {
	verifyData []byte
}

func (m *finishedMsg) marshal() ([]byte, error) {
	return withHeader(typeFinished, func(b *cryptobyte.Builder) { b.AddBytes(m.verifyData) })
}

func (m *finishedMsg) unmarshal(data []byte) bool {
	s, ok := readHeader(data, typeFinished)
	if !ok || len(s) != finishedVerifyLen {
		return false
	}
	m.verifyData = []byte(s)
	return true
}

// newSessionTicketMsg is RFC 5077 §3.3.
type newSessionTicketMsg struct {
	lifetimeHint uint32
	ticket       []byte
}

func (m *newSessionTicketMsg) marshal() ([]byte, error) {
	return withHeader(typeNewSessionTicket, func(b *cryptobyte.Builder) {
		b.AddUint32(m.lifetimeHint)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.ticket) })
	})
}

func (m *newSessionTicketMsg) unmarshal(data []byte) bool {
	*m = newSessionTicketMsg{}
	s, ok := readHeader(data, typeNewSessionTicket)
	return ok && s.ReadUint32(&m.lifetimeHint) && readUint16LengthPrefixed(&s, &m.ticket) && s.Empty()
}
