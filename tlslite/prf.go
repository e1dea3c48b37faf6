package tlslite

// RFC 5246 §5 (HMAC and the pseudorandom function), §6.3 (key calculation),
// §7.4.9 (Finished), §8.1 (master secret); RFC 7627 §4 (extended master
// secret, session_hash).

import (
	"crypto"
	"crypto/hmac"
	"errors"
	"fmt"
	"hash"
)

// pHash is P_hash(secret, seed) of RFC 5246 §5, filling out.
func pHash(out, secret, seed []byte, h func() hash.Hash) {
	mac := hmac.New(h, secret)
	mac.Write(seed)
	a := mac.Sum(nil) // A(1)
	var buf []byte
	for len(out) > 0 {
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		buf = mac.Sum(buf[:0])
		n := copy(out, buf)
		out = out[n:]
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
}

// prf12 is PRF(secret, label, seed) = P_<hash>(secret, label + seed),
// RFC 5246 §5, with the suite's hash (SHA-256, or SHA-384 for the _SHA384
// suites, RFC 5288 §3).
func prf12(hashFn crypto.Hash, out, secret []byte, label string, seed ...[]byte) {
	s := make([]byte, 0, len(label)+64)
	s = append(s, label...)
	for _, p := range seed {
		s = append(s, p...)
	}
	pHash(out, secret, s, hashFn.New)
}

// PRF exposes the TLS 1.2 PRF for the teaching labs: PRF(secret, label,
// seed) with SHA-256 (sha384 false) or SHA-384, producing n bytes.
func PRF(sha384 bool, secret []byte, label string, seed []byte, n int) []byte {
	h := crypto.SHA256
	if sha384 {
		h = crypto.SHA384
	}
	out := make([]byte, n)
	prf12(h, out, secret, label, seed)
	return out
}

// masterFromPreMaster is RFC 5246 §8.1:
// master_secret = PRF(pre_master_secret, "master secret",
// ClientHello.random + ServerHello.random)[0..47].
func masterFromPreMaster(h crypto.Hash, preMaster, clientRandom, serverRandom []byte) []byte {
	out := make([]byte, masterSecretLen)
	prf12(h, out, preMaster, "master secret", clientRandom, serverRandom)
	return out
}

// extendedMasterFromPreMaster is RFC 7627 §4:
// master_secret = PRF(pre_master_secret, "extended master secret",
// session_hash)[0..47], session_hash = Hash(handshake up to and including
// ClientKeyExchange).
func extendedMasterFromPreMaster(h crypto.Hash, preMaster, sessionHash []byte) []byte {
	out := make([]byte, masterSecretLen)
	prf12(h, out, preMaster, "extended master secret", sessionHash)
	return out
}

// KeyMaterial is the part of the RFC 5246 §6.3 key block an AEAD suite uses
// (no MAC keys; the IVs are the 4-byte RFC 5288 §3 salts).
type KeyMaterial struct {
	ClientKey, ServerKey []byte
	ClientIV, ServerIV   []byte
}

// keysFromMaster is RFC 5246 §6.3: key_block = PRF(master_secret,
// "key expansion", server_random + client_random), partitioned into
// client_write_key, server_write_key, client_write_IV, server_write_IV.
func keysFromMaster(h crypto.Hash, master, clientRandom, serverRandom []byte, keyLen, ivLen int) KeyMaterial {
	kb := make([]byte, 2*keyLen+2*ivLen)
	prf12(h, kb, master, "key expansion", serverRandom, clientRandom)
	var km KeyMaterial
	km.ClientKey, kb = kb[:keyLen:keyLen], kb[keyLen:]
	km.ServerKey, kb = kb[:keyLen:keyLen], kb[keyLen:]
	km.ClientIV, kb = kb[:ivLen:ivLen], kb[ivLen:]
	km.ServerIV = kb[:ivLen:ivLen]
	return km
}

// transcript accumulates the handshake messages (RFC 5246 §7.4.9
// handshake_messages). The hash is unknown until ServerHello picks the
// suite, so messages are buffered until then.
type transcript struct {
	buf  []byte
	h    hash.Hash
	algo crypto.Hash
}

func (t *transcript) Write(p []byte) {
	if t.h != nil {
		t.h.Write(p)
		return
	}
	t.buf = append(t.buf, p...)
}

func (t *transcript) setHash(h crypto.Hash) {
	t.algo = h
	t.h = h.New()
	t.h.Write(t.buf)
	t.buf = nil
}

func (t *transcript) sum() []byte { return t.h.Sum(nil) }

// finished is RFC 5246 §7.4.9: verify_data = PRF(master_secret,
// finished_label, Hash(handshake_messages))[0..11].
func (t *transcript) finished(master []byte, client bool) []byte {
	label := "server finished"
	if client {
		label = "client finished"
	}
	out := make([]byte, finishedVerifyLen)
	prf12(t.algo, out, master, label, t.sum())
	return out
}

// SessionKeys derives what a full handshake derives from its pre-master
// secret: the master secret (RFC 5246 §8.1, or RFC 7627 §4 when handshake
// is not nil) and suite's record keys and IVs (§6.3). For the extended
// master secret, handshake is the handshake messages from ClientHello
// through ClientKeyExchange as they were sent, 4-byte headers included;
// their hash is the session hash. Both randoms are 32 bytes.
//
// Anyone who learns a session's pre-master secret can do this from a
// recording of it: the forward-secrecy lab does, with an RSA key
// exchange's pre-master secret decrypted with the server's private key.
func SessionKeys(suite uint16, preMaster, clientRandom, serverRandom, handshake []byte) (master []byte, keys *KeyMaterial, err error) {
	s := suiteByID(suite)
	if s == nil {
		return nil, nil, fmt.Errorf("tlslite: unknown cipher suite %#04x", suite)
	}
	if len(clientRandom) != 32 || len(serverRandom) != 32 {
		return nil, nil, errors.New("tlslite: randoms must be 32 bytes")
	}
	if handshake != nil {
		h := s.hash.New()
		h.Write(handshake)
		master = extendedMasterFromPreMaster(s.hash, preMaster, h.Sum(nil))
	} else {
		master = masterFromPreMaster(s.hash, preMaster, clientRandom, serverRandom)
	}
	km := keysFromMaster(s.hash, master, clientRandom, serverRandom, s.keyLen, gcmImplicitNonce)
	return master, &km, nil
}
