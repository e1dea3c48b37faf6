package tlslite

import "crypto/x509"

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventHandshake: a handshake message was sent or received.
	EventHandshake EventKind = iota
	// EventChangeCipherSpec: a ChangeCipherSpec record (RFC 5246 §7.1).
	EventChangeCipherSpec
	// EventAlert: an alert record, close_notify included (RFC 5246 §7.2).
	EventAlert
	// EventApplicationData: one application-data record.
	EventApplicationData
	// EventKeys: the master secret and record keys were derived
	// (RFC 5246 §6.3, §8.1); carries MasterSecret and Keys.
	EventKeys
)

func (k EventKind) String() string {
	switch k {
	case EventHandshake:
		return "handshake"
	case EventChangeCipherSpec:
		return "ChangeCipherSpec"
	case EventAlert:
		return "alert"
	case EventApplicationData:
		return "application_data"
	case EventKeys:
		return "keys"
	}
	return "event"
}

// Event is what Config.Observer receives, for the ladder diagram and the
// labs. Byte slices are copies or otherwise not reused by the Conn. Fields
// that do not apply are zero.
type Event struct {
	Kind   EventKind
	Client bool // the observing endpoint is the client
	Sent   bool // sent by the observing endpoint (false: received)

	Message string // handshake message name, e.g. "ClientHello"
	Length  int    // handshake message bytes (header included) or record plaintext bytes

	// Application data: the record's sequence number in its direction and
	// the record as on the wire (header + nonce_explicit + ciphertext +
	// tag), which OpenRecord decrypts with Keys.
	Seq    uint64
	Record []byte

	Alert      Alert
	AlertLevel AlertLevel

	// Hello values.
	ClientRandom []byte // ClientHello
	ServerRandom []byte // ServerHello
	CipherSuite  uint16 // ServerHello
	SessionID    []byte // Hello messages
	ServerName   string // ClientHello SNI
	ALPN         []string
	Resumed      bool // ServerHello: the session is being resumed

	// Certificate message.
	Certificates []*x509.Certificate

	// ServerKeyExchange / ClientKeyExchange.
	Curve              CurveID
	ECDHPublic         []byte // the sender's ephemeral public key
	EncryptedPreMaster []byte // RSA: the ciphertext in ClientKeyExchange
	PreMasterSecret    []byte // known to the client, and to the server after decryption

	// EventKeys.
	ExtendedMasterSecret bool
	MasterSecret         []byte
	Keys                 *KeyMaterial

	// Finished.
	VerifyData []byte
}
