package tlslite

// Events for Config.Observer: one type per step of the handshake
// (RFC 5246 §7.3 Figures 1 and 2, RFC 5077 §3.3), ChangeCipherSpec (§7.1),
// alerts (§7.2), application-data records (§6.2.3.3) and the secrets the
// handshake derived (§8.1, §6.3). An event is built only when an Observer
// is set; without one nothing is copied.

import (
	"crypto/x509"
	"slices"
)

// Event is what Config.Observer receives; switch on its concrete type
// (ClientHelloEvent, ..., KeysEvent). Byte slices in an event are copies
// the observer may keep.
type Event interface {
	// Client reports whether the observing endpoint is the client.
	Client() bool
	// Sent reports whether the observing endpoint sent what the event
	// describes; false when it received it, and for KeysEvent.
	Sent() bool
	isEvent()
}

// HandshakeEvent is implemented by the events for handshake messages.
type HandshakeEvent interface {
	Event
	// Message is the message's name in RFC 5246 §7.4, e.g. "ClientHello".
	Message() string
	// Length is the message's size, its 4-byte header included.
	Length() int
}

// endpoint is what every event carries.
type endpoint struct{ client, sent bool }

func (e endpoint) Client() bool { return e.client }
func (e endpoint) Sent() bool   { return e.sent }
func (endpoint) isEvent()       {}

// message is what every handshake message's event carries.
type message struct {
	endpoint
	typ    uint8
	length int
}

func (m message) Message() string { return msgName(m.typ) }
func (m message) Length() int     { return m.length }

// ClientHelloEvent reports ClientHello, RFC 5246 §7.4.1.2.
type ClientHelloEvent struct {
	message
	Random     []byte   // client random
	SessionID  []byte   // the session offered for resumption; may be empty
	ServerName string   // server_name, RFC 6066 §3
	ALPN       []string // offered protocols, RFC 7301 §3.1
}

// ServerHelloEvent reports ServerHello, RFC 5246 §7.4.1.3.
type ServerHelloEvent struct {
	message
	Random      []byte // server random
	CipherSuite uint16
	SessionID   []byte
	Resumed     bool // the server resumes the offered session (§7.3 Figure 2)
}

// CertificateEvent reports the server's Certificate, RFC 5246 §7.4.2, or
// the client's empty one after a CertificateRequest (§7.4.6).
type CertificateEvent struct {
	message
	Certificates []*x509.Certificate // leaf first
}

// ServerKeyExchangeEvent reports the server's ECDHE share, RFC 8422 §5.4.
type ServerKeyExchangeEvent struct {
	message
	Curve     CurveID
	PublicKey []byte // the server's ephemeral public key
}

// CertificateRequestEvent reports a CertificateRequest, RFC 5246 §7.4.4
// (tlslite answers it with an empty Certificate).
type CertificateRequestEvent struct{ message }

// ServerHelloDoneEvent reports ServerHelloDone, RFC 5246 §7.4.5.
type ServerHelloDoneEvent struct{ message }

// ClientKeyExchangeEvent reports ClientKeyExchange, RFC 5246 §7.4.7: with
// RSA key exchange the encrypted pre-master secret (§7.4.7.1), with ECDHE
// the client's share (RFC 8422 §5.7). The pre-master secret itself is in
// KeysEvent.
type ClientKeyExchangeEvent struct {
	message
	EncryptedPreMaster []byte  // RSA: the ciphertext
	Curve              CurveID // ECDHE
	PublicKey          []byte  // ECDHE: the client's ephemeral public key
}

// NewSessionTicketEvent reports NewSessionTicket, RFC 5077 §3.3.
type NewSessionTicketEvent struct {
	message
	LifetimeHint uint32 // seconds
	Ticket       []byte // opaque to the client; sealed by the server
}

// FinishedEvent reports Finished, RFC 5246 §7.4.9.
type FinishedEvent struct {
	message
	VerifyData []byte
}

// PostHandshakeMessageEvent reports a handshake message that arrived
// after the handshake: a renegotiation request (ClientHello to a server,
// HelloRequest to a client), refused with no_renegotiation (RFC 5746
// §4.2, §4.4), or anything else, answered with unexpected_message. Its
// body is not parsed.
type PostHandshakeMessageEvent struct{ message }

// ChangeCipherSpecEvent reports a ChangeCipherSpec record, RFC 5246 §7.1.
type ChangeCipherSpecEvent struct{ endpoint }

// AlertEvent reports an alert record, close_notify included (RFC 5246
// §7.2).
type AlertEvent struct {
	endpoint
	Level AlertLevel
	Alert Alert
}

// ApplicationDataEvent reports one application-data record.
type ApplicationDataEvent struct {
	endpoint
	Seq    uint64 // the record's sequence number in its direction, RFC 5246 §6.1
	Length int    // plaintext bytes
	// Record is the record as on the wire (header, nonce_explicit,
	// ciphertext, tag); OpenRecord decrypts it with KeysEvent.Keys.
	Record []byte
}

// KeysEvent reports the secrets of a handshake once the keys are derived
// (RFC 5246 §8.1, §6.3; RFC 7627 §4): the pre-master secret, the master
// secret and the record keys and IVs. Secrets leave tlslite only in this
// event, delivered to the Observer the caller installed, and in the
// master-secret lines written to the caller's Config.KeyLogWriter.
type KeysEvent struct {
	endpoint
	ClientRandom         []byte
	ServerRandom         []byte
	CipherSuite          uint16
	ExtendedMasterSecret bool
	// PreMasterSecret: RFC 5246 §8.1.1 (RSA) or the ECDH shared secret
	// (RFC 8422 §5.10). Nil when a session was resumed.
	PreMasterSecret []byte
	MasterSecret    []byte
	Keys            *KeyMaterial // never nil
}

// clone copies the key material for an observer.
func (k *KeyMaterial) clone() *KeyMaterial {
	return &KeyMaterial{
		ClientKey: slices.Clone(k.ClientKey), ServerKey: slices.Clone(k.ServerKey),
		ClientIV: slices.Clone(k.ClientIV), ServerIV: slices.Clone(k.ServerIV),
	}
}

// observe reports an event to Config.Observer. build makes it and runs
// only when an Observer is set: without one no event is built and no
// random or secret is copied.
func (c *Conn) observe(sent bool, build func(endpoint) Event) {
	if c.config.Observer != nil {
		c.emit(build(endpoint{client: c.isClient, sent: sent}))
	}
}

// observeMessage is observe for the handshake message raw (header
// included).
func (c *Conn) observeMessage(sent bool, raw []byte, build func(message) Event) {
	if c.config.Observer != nil {
		c.emit(build(message{endpoint: endpoint{client: c.isClient, sent: sent}, typ: raw[0], length: len(raw)}))
	}
}

func (c *Conn) emit(ev Event) {
	if h := c.config.testHooks; h != nil && h.eventBuilt != nil {
		h.eventBuilt(ev)
	}
	c.config.Observer(ev)
}
