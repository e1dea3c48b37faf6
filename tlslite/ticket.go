package tlslite

// Session resumption, RFC 5246 §7.3 (abbreviated handshake with session
// IDs) and RFC 5077 (session tickets; §4 recommends the ticket layout used
// here: key_name, IV, encrypted state, MAC; we use AES-256-GCM for the last
// three). RFC 7627 §5.3: a session remembers whether it used the extended
// master secret.

import (
	"container/list"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// sessionState is what a server needs to resume: kept in the session-ID
// cache or sealed into a ticket.
type sessionState struct {
	vers         uint16
	cipherSuite  uint16
	ems          bool
	createdAt    uint64 // Unix seconds
	masterSecret []byte
}

func (s *sessionState) marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint16(s.vers)
	b.AddUint16(s.cipherSuite)
	if s.ems {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	b.AddUint64(s.createdAt)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.masterSecret) })
	return b.BytesOrPanic()
}

func (s *sessionState) unmarshal(data []byte) bool {
	in := cryptobyte.String(data)
	var ems uint8
	if !in.ReadUint16(&s.vers) || !in.ReadUint16(&s.cipherSuite) || !in.ReadUint8(&ems) || ems > 1 ||
		!in.ReadUint64(&s.createdAt) || !readUint8LengthPrefixed(&in, &s.masterSecret) ||
		len(s.masterSecret) != masterSecretLen || !in.Empty() {
		return false
	}
	s.ems = ems == 1
	return true
}

// ticketKey seals tickets: name identifies it in the ticket (RFC 5077 §4
// key_name).
type ticketKey struct {
	name    [16]byte
	aead    cipher.AEAD
	created time.Time
}

func newTicketKey(secret [32]byte, created time.Time) ticketKey {
	h := sha256.Sum256(append([]byte("tlslite ticket key name"), secret[:]...))
	block, _ := aes.NewCipher(secret[:]) // 32 bytes: AES-256, cannot fail
	aead, _ := cipher.NewGCM(block)
	k := ticketKey{aead: aead, created: created}
	copy(k.name[:], h[:16])
	return k
}

// serverState is a Config's mutable server-side state.
type serverState struct {
	mu         sync.Mutex
	ticketKeys []ticketKey // first seals; all open
	autoKeys   bool
	cache      *sessionCache
}

func (c *Config) server() *serverState {
	c.serverOnce.Do(func() {
		c.serverState = &serverState{autoKeys: true}
		size := c.SessionCacheSize
		if size == 0 {
			size = 1024
		}
		if size > 0 {
			c.serverState.cache = newSessionCache(size)
		}
	})
	return c.serverState
}

// SetSessionTicketKeys installs fixed ticket keys: the first seals new
// tickets, all of them open tickets. It turns off automatic rotation. Use
// it to share tickets between servers.
func (c *Config) SetSessionTicketKeys(keys [][32]byte) {
	st := c.server()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ticketKeys = nil
	now := c.now()
	for _, k := range keys {
		st.ticketKeys = append(st.ticketKeys, newTicketKey(k, now))
	}
	st.autoKeys = len(keys) == 0
}

// currentTicketKeys rotates automatic keys: a fresh key every
// TicketKeyRotation, old ones kept while tickets they sealed may live.
func (c *Config) currentTicketKeys() ([]ticketKey, error) {
	st := c.server()
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.autoKeys {
		return st.ticketKeys, nil
	}
	now := c.now()
	rotation := c.TicketKeyRotation
	if rotation <= 0 {
		rotation = time.Hour
	}
	if len(st.ticketKeys) == 0 || now.Sub(st.ticketKeys[0].created) >= rotation || now.Before(st.ticketKeys[0].created) {
		var secret [32]byte
		if _, err := io.ReadFull(c.rand(), secret[:]); err != nil {
			return nil, err
		}
		keys := []ticketKey{newTicketKey(secret, now)}
		for _, k := range st.ticketKeys {
			if now.Sub(k.created) < rotation+c.sessionLifetime() {
				keys = append(keys, k)
			}
		}
		st.ticketKeys = keys
	}
	return st.ticketKeys, nil
}

// sealTicket is RFC 5077 §4: key_name(16) || nonce(12) || AES-GCM(state),
// with key_name as additional data.
func (c *Config) sealTicket(s *sessionState) ([]byte, error) {
	keys, err := c.currentTicketKeys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("tlslite: no ticket keys")
	}
	k := keys[0]
	out := make([]byte, 16+12, 16+12+64+16)
	copy(out, k.name[:])
	if _, err := io.ReadFull(c.rand(), out[16:28]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[16:28], s.marshal(), out[:16]), nil
}

// openTicket returns the state in a ticket, or nil if no key opens it.
func (c *Config) openTicket(ticket []byte) *sessionState {
	if len(ticket) < 16+12+16 {
		return nil
	}
	keys, err := c.currentTicketKeys()
	if err != nil {
		return nil
	}
	for _, k := range keys {
		if [16]byte(ticket[:16]) != k.name {
			continue
		}
		pt, err := k.aead.Open(nil, ticket[16:28], ticket[28:], ticket[:16])
		if err != nil {
			return nil
		}
		s := new(sessionState)
		if !s.unmarshal(pt) {
			return nil
		}
		return s
	}
	return nil
}

// lru is a map of at most capacity entries that forgets the least
// recently used one, safe for concurrent use: the server's session-ID
// cache and the client's session cache.
type lru[V any] struct {
	mu       sync.Mutex
	capacity int
	m        map[string]*list.Element
	order    *list.List // front: most recently used
}

type lruEntry[V any] struct {
	key string
	val V
}

func newLRU[V any](capacity int) *lru[V] {
	return &lru[V]{capacity: capacity, m: make(map[string]*list.Element), order: list.New()}
}

// get returns the value stored for key, or the zero V, and marks it used.
func (c *lru[V]) get(key string) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		var zero V
		return zero
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry[V]).val
}

// put stores v for key, evicting the least recently used entry if full.
func (c *lru[V]) put(key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		e.Value.(*lruEntry[V]).val = v
		c.order.MoveToFront(e)
		return
	}
	c.m[key] = c.order.PushFront(&lruEntry[V]{key: key, val: v})
	for c.order.Len() > c.capacity {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.m, last.Value.(*lruEntry[V]).key)
	}
}

func (c *lru[V]) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.order.Remove(e)
		delete(c.m, key)
	}
}

func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// sessionCache is the server's bounded LRU session-ID cache.
type sessionCache = lru[*sessionState]

func newSessionCache(capacity int) *sessionCache { return newLRU[*sessionState](capacity) }

// ClientSessionState is a client's resumable session. Its master secret is
// unexported: secrets leave tlslite only through the Config.KeyLogWriter
// and Config.Observer the caller set, not through a session cache.
type ClientSessionState struct {
	SessionID            []byte // RFC 5246 §7.4.1.2 session_id (may be empty with a ticket)
	Ticket               []byte // RFC 5077 ticket, opaque to the client
	Version              uint16
	CipherSuite          uint16
	ExtendedMasterSecret bool
	ServerCertificates   []*x509.Certificate
	VerifiedChains       [][]*x509.Certificate
	ReceivedAt           time.Time

	masterSecret []byte
}

// ClientSessionCache stores sessions for resumption, keyed by server name
// (or address). Put with a nil state deletes. Implementations must be safe
// for concurrent use.
type ClientSessionCache interface {
	Get(key string) (*ClientSessionState, bool)
	Put(key string, cs *ClientSessionState)
}

type lruClientCache struct {
	sessions *lru[*ClientSessionState]
}

// NewLRUClientSessionCache returns a ClientSessionCache holding at most
// capacity sessions (64 if capacity < 1), evicting the least recently used.
func NewLRUClientSessionCache(capacity int) ClientSessionCache {
	if capacity < 1 {
		capacity = 64
	}
	return &lruClientCache{sessions: newLRU[*ClientSessionState](capacity)}
}

func (c *lruClientCache) Get(key string) (*ClientSessionState, bool) {
	cs := c.sessions.get(key)
	return cs, cs != nil
}

func (c *lruClientCache) Put(key string, cs *ClientSessionState) {
	if cs == nil {
		c.sessions.remove(key)
		return
	}
	c.sessions.put(key, cs)
}
