package tlslite

// Reading list: RFC 5246 (TLS 1.2) §6 record layer, §7.4 handshake, §A.5
// cipher suites; RFC 5288 (AES-GCM suites); RFC 4492 + RFC 8422 (ECC);
// RFC 6066 §3 (server_name); RFC 7301 (ALPN); RFC 7627 (extended master
// secret); RFC 5746 (renegotiation_info); RFC 5077 (session tickets);
// RFC 8446 §4.1.3 (downgrade sentinel); RFC 7457 (known attacks).

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"io"
	"strconv"
	"sync"
	"time"
)

// VersionTLS12 is the only protocol version tlslite speaks.
const VersionTLS12 uint16 = 0x0303

const (
	versionTLS10 uint16 = 0x0301
	versionTLS13 uint16 = 0x0304
)

// Record content types, RFC 5246 §6.2.1.
type recordType uint8

const (
	recordTypeChangeCipherSpec recordType = 20
	recordTypeAlert            recordType = 21
	recordTypeHandshake        recordType = 22
	recordTypeApplicationData  recordType = 23
)

// Record sizes, RFC 5246 §6.2.1-§6.2.3.
const (
	recordHeaderLen   = 5
	maxPlaintext      = 1 << 14             // TLSPlaintext.length <= 2^14
	maxCiphertext     = maxPlaintext + 2048 // TLSCiphertext.length <= 2^14 + 2048
	maxHandshakeSize  = 1 << 18             // our bound on one reassembled handshake message
	maxEmptyRecords   = 16                  // consecutive empty records tolerated
	maxWarningAlerts  = 16                  // consecutive warning alerts tolerated
	gcmExplicitNonce  = 8                   // RFC 5288 §3 nonce_explicit
	gcmTagLen         = 16
	gcmImplicitNonce  = 4 // RFC 5288 §3 salt
	masterSecretLen   = 48
	finishedVerifyLen = 12 // RFC 5246 §7.4.9 verify_data_length
)

// Handshake message types, RFC 5246 §7.4 and RFC 5077 §3.3.
const (
	typeHelloRequest       uint8 = 0
	typeClientHello        uint8 = 1
	typeServerHello        uint8 = 2
	typeNewSessionTicket   uint8 = 4
	typeCertificate        uint8 = 11
	typeServerKeyExchange  uint8 = 12
	typeCertificateRequest uint8 = 13
	typeServerHelloDone    uint8 = 14
	typeCertificateVerify  uint8 = 15
	typeClientKeyExchange  uint8 = 16
	typeFinished           uint8 = 20
)

var handshakeNames = map[uint8]string{
	typeHelloRequest:       "HelloRequest",
	typeClientHello:        "ClientHello",
	typeServerHello:        "ServerHello",
	typeNewSessionTicket:   "NewSessionTicket",
	typeCertificate:        "Certificate",
	typeServerKeyExchange:  "ServerKeyExchange",
	typeCertificateRequest: "CertificateRequest",
	typeServerHelloDone:    "ServerHelloDone",
	typeCertificateVerify:  "CertificateVerify",
	typeClientKeyExchange:  "ClientKeyExchange",
	typeFinished:           "Finished",
}

// enumName returns the name of v in names, or kind(v) for a value without
// one.
func enumName[T ~uint8 | ~uint16](names map[T]string, v T, kind string) string {
	if s, ok := names[v]; ok {
		return s
	}
	return kind + "(" + strconv.Itoa(int(v)) + ")"
}

// Extension numbers.
const (
	extServerName           uint16 = 0      // RFC 6066 §3
	extSupportedGroups      uint16 = 10     // RFC 8422 §5.1.1 (elliptic_curves in RFC 4492)
	extECPointFormats       uint16 = 11     // RFC 4492 §5.1.2
	extSignatureAlgorithms  uint16 = 13     // RFC 5246 §7.4.1.4.1
	extALPN                 uint16 = 16     // RFC 7301 §3.1
	extExtendedMasterSecret uint16 = 23     // RFC 7627 §5.1
	extSessionTicket        uint16 = 35     // RFC 5077 §3.2
	extSupportedVersions    uint16 = 43     // RFC 8446 §4.2.1
	extRenegotiationInfo    uint16 = 0xff01 // RFC 5746 §3.2
)

// scsvRenegotiation is TLS_EMPTY_RENEGOTIATION_INFO_SCSV, RFC 5746 §3.3.
const scsvRenegotiation uint16 = 0x00ff

// downgradeTLS12 is the RFC 8446 §4.1.3 sentinel "DOWNGRD\x01" placed in the
// last 8 bytes of ServerHello.random by TLS 1.3-capable servers that
// negotiate TLS 1.2.
const downgradeTLS12 = "DOWNGRD\x01"

// downgradeTLS11 is the sentinel for TLS 1.1 and below.
const downgradeTLS11 = "DOWNGRD\x00"

// CurveID names a supported group (RFC 8422 §5.1.1).
type CurveID uint16

const (
	CurveP256 CurveID = 23
	X25519    CurveID = 29
)

var curveNames = map[CurveID]string{
	CurveP256: "P-256",
	X25519:    "X25519",
}

func (c CurveID) String() string { return enumName(curveNames, c, "curve") }

// SignatureScheme is a TLS 1.2 SignatureAndHashAlgorithm written as one
// uint16 (RFC 5246 §7.4.1.4.1, with the RFC 8446 §4.2.3 code points for PSS).
type SignatureScheme uint16

const (
	PKCS1WithSHA1       SignatureScheme = 0x0201
	PKCS1WithSHA256     SignatureScheme = 0x0401
	PKCS1WithSHA384     SignatureScheme = 0x0501
	PKCS1WithSHA512     SignatureScheme = 0x0601
	PSSWithSHA256       SignatureScheme = 0x0804
	PSSWithSHA384       SignatureScheme = 0x0805
	PSSWithSHA512       SignatureScheme = 0x0806
	ecdsaWithP256SHA256 SignatureScheme = 0x0403
)

// supportedSignatureSchemes is our preference order (RSA certificates only).
var supportedSignatureSchemes = []SignatureScheme{
	PSSWithSHA256, PKCS1WithSHA256,
	PSSWithSHA384, PKCS1WithSHA384,
	PSSWithSHA512, PKCS1WithSHA512,
}

// KeyExchange restricts which key exchanges a server (or client) uses; it
// backs the CLI's --kex rsa|ecdhe|any.
type KeyExchange uint8

const (
	// KeyExchangeAny allows both, preferring ECDHE when the peer offers it.
	KeyExchangeAny KeyExchange = iota
	// KeyExchangeRSA allows only TLS_RSA_* suites (RFC 5246 §7.4.7.1).
	KeyExchangeRSA
	// KeyExchangeECDHE allows only TLS_ECDHE_RSA_* suites (RFC 8422).
	KeyExchangeECDHE
)

// ParseKeyExchange maps "rsa", "ecdhe" and "any" to a KeyExchange.
func ParseKeyExchange(s string) (KeyExchange, bool) {
	switch s {
	case "rsa":
		return KeyExchangeRSA, true
	case "ecdhe":
		return KeyExchangeECDHE, true
	case "any", "":
		return KeyExchangeAny, true
	}
	return 0, false
}

func (k KeyExchange) String() string {
	switch k {
	case KeyExchangeRSA:
		return "rsa"
	case KeyExchangeECDHE:
		return "ecdhe"
	}
	return "any"
}

// Certificate is a server's chain (leaf first, DER) and its RSA key.
type Certificate struct {
	Chain      [][]byte
	PrivateKey *rsa.PrivateKey
	Leaf       *x509.Certificate // parsed Chain[0]; filled by LoadCertificate
}

// Config configures a client or server. A Config may be shared by many
// connections once in use and must not be modified then.
type Config struct {
	// Rand supplies randomness (randoms, pre-master secrets, keys, nonces).
	// Nil means crypto/rand.Reader.
	Rand io.Reader
	// Time returns the current time (certificate validity, ticket ages,
	// gmt_unix_time is not used). Nil means time.Now.
	Time func() time.Time

	// Certificates holds the server's certificate; the first is used.
	Certificates []Certificate

	// RootCAs are the client's trust anchors; nil means the system pool.
	RootCAs *x509.CertPool
	// ServerName is sent in server_name (unless it is an IP address) and
	// checked against the certificate.
	ServerName string
	// InsecureSkipVerify disables chain and name verification (tests only).
	InsecureSkipVerify bool

	// CipherSuites lists enabled suites in preference order (the server's
	// order decides). Nil means DefaultCipherSuites().
	CipherSuites []uint16
	// KeyExchange restricts the suites to RSA or ECDHE key exchange.
	KeyExchange KeyExchange
	// CurvePreferences lists ECDHE groups in preference order; nil means
	// X25519, P-256.
	CurvePreferences []CurveID

	// NextProtos are the ALPN protocols (RFC 7301) in preference order. A
	// server with NextProtos refuses a client whose offer has none of them
	// with no_application_protocol.
	NextProtos []string

	// AllowNoExtendedMasterSecret lets a client finish a handshake with a
	// server that did not negotiate RFC 7627 (insecure; off by default).
	AllowNoExtendedMasterSecret bool

	// SessionTicketsDisabled turns off RFC 5077 tickets on either side.
	SessionTicketsDisabled bool
	// SessionCacheSize bounds the server's session-ID cache (LRU). Zero
	// means 1024; negative disables session IDs.
	SessionCacheSize int
	// SessionLifetime bounds resumption (ticket and ID); zero means 24h.
	SessionLifetime time.Duration
	// TicketKeyRotation is how often a fresh ticket key is made when the
	// keys are automatic; zero means 1h. Old keys still decrypt for
	// SessionLifetime.
	TicketKeyRotation time.Duration
	// ClientSessionCache stores client sessions for resumption; nil
	// disables client-side resumption.
	ClientSessionCache ClientSessionCache

	// DowngradeSentinel makes the server put the RFC 8446 §4.1.3 sentinel
	// in its random when the client offered TLS 1.3. Off by default: we
	// are not a TLS 1.3 server and every TLS 1.3 client aborts on it. For
	// the downgrade lab.
	DowngradeSentinel bool

	// KeyLogWriter receives NSS key log lines (SSLKEYLOGFILE format), which
	// hold the master secrets.
	KeyLogWriter io.Writer
	// Observer, when set, receives an Event for each handshake message,
	// ChangeCipherSpec, alert and application-data record, and a KeysEvent
	// with the handshake's secrets (pre-master secret, master secret, keys
	// and IVs). Secrets leave tlslite only through an Observer and a
	// KeyLogWriter the caller set. Without an Observer no event is built.
	// It runs on the connection's goroutine and must not block for long.
	Observer func(Event)

	serverOnce  sync.Once
	serverState *serverState

	testHooks *testHooks // nil outside tests
}

// testHooks let tests break the protocol on purpose.
type testHooks struct {
	corruptFinished bool                                              // send a wrong verify_data
	noEMS           bool                                              // neither offer nor accept RFC 7627
	rsaCiphertext   func(pub *rsa.PublicKey, preMaster []byte) []byte // replace the RSA ClientKeyExchange ciphertext
	eventBuilt      func(Event)                                       // sees every event built, before the Observer
}

func (c *Config) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Config) now() time.Time {
	if c.Time != nil {
		return c.Time()
	}
	return time.Now()
}

func (c *Config) sessionLifetime() time.Duration {
	if c.SessionLifetime > 0 {
		return c.SessionLifetime
	}
	return 24 * time.Hour
}

func (c *Config) curves() []CurveID {
	if len(c.CurvePreferences) > 0 {
		return c.CurvePreferences
	}
	return []CurveID{X25519, CurveP256}
}

// Clone returns a shallow copy of c without its internal server state
// (ticket keys and session cache).
func (c *Config) Clone() *Config {
	return &Config{
		Rand:                        c.Rand,
		Time:                        c.Time,
		Certificates:                c.Certificates,
		RootCAs:                     c.RootCAs,
		ServerName:                  c.ServerName,
		InsecureSkipVerify:          c.InsecureSkipVerify,
		CipherSuites:                c.CipherSuites,
		KeyExchange:                 c.KeyExchange,
		CurvePreferences:            c.CurvePreferences,
		NextProtos:                  c.NextProtos,
		AllowNoExtendedMasterSecret: c.AllowNoExtendedMasterSecret,
		SessionTicketsDisabled:      c.SessionTicketsDisabled,
		SessionCacheSize:            c.SessionCacheSize,
		SessionLifetime:             c.SessionLifetime,
		TicketKeyRotation:           c.TicketKeyRotation,
		ClientSessionCache:          c.ClientSessionCache,
		DowngradeSentinel:           c.DowngradeSentinel,
		KeyLogWriter:                c.KeyLogWriter,
		Observer:                    c.Observer,
	}
}

// ConnectionState describes a finished handshake. It holds no secret
// (see Config.Observer).
type ConnectionState struct {
	Version              uint16
	HandshakeComplete    bool
	CipherSuite          uint16
	ExtendedMasterSecret bool
	SecureRenegotiation  bool // the peer spoke RFC 5746
	DidResume            bool
	ResumedWithTicket    bool
	ServerName           string // SNI (client: sent; server: received)
	NegotiatedProtocol   string // ALPN
	PeerCertificates     []*x509.Certificate
	VerifiedChains       [][]*x509.Certificate
	CurveID              CurveID // ECDHE group; 0 for RSA key exchange
	ClientOfferedTLS13   bool    // server side: supported_versions listed 1.3
}
