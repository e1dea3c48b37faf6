package lab

// The forward-secrecy lab: two recorded HTTPS sessions with one server
// key, one with RSA key exchange (RFC 5246 §7.4.7.1), one with ECDHE
// (RFC 8422 §5.4, §5.10); later the server's private key alone opens the
// first recording and not the second.

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"ustack/internal/record"
	"ustack/tlslite"
)

// fsSession is one recorded session and what the lab kept to check the
// attacker's results (never given to the attacker).
type fsSession struct {
	kex       string // "RSA", "ECDHE"
	suite     uint16
	port      uint16 // the client's port: the connection in the recording
	keys      tlslite.KeysEvent
	cliState  tlslite.ConnectionState
	req, resp string
}

// fsRun is the recording: both sessions and the server's key.
type fsRun struct {
	cert     tlslite.Certificate
	sessions []fsSession
}

// forwardSecrecy records two sessions, then plays the attacker who holds
// the recording and, later, the server's private key.
func (r *labRun) forwardSecrecy(env *labTLSEnv) error {
	run, err := r.fsRecord(env)
	if err != nil {
		return err
	}
	pk := r.rec.Packets()
	key := run.cert.PrivateKey
	r.section("later: the attacker has the recording and the server's private key, nothing else")
	r.say("(the key leaked, or was seized, after both sessions ended; d=%s…)", short(key.D.Bytes())[:16])
	st0, st1 := run.sessions[0].cliState, run.sessions[1].cliState
	r.check(st0.CipherSuite == tlslite.TLS_RSA_WITH_AES_128_GCM_SHA256 && st1.CipherSuite == tlslite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 &&
		st1.CurveID == tlslite.X25519 && len(st0.PeerCertificates) > 0 && len(st1.PeerCertificates) > 0 &&
		bytes.Equal(st0.PeerCertificates[0].Raw, st1.PeerCertificates[0].Raw),
		"the two sessions used %s and %s (X25519), with the same server certificate and key",
		tlslite.CipherSuiteName(tlslite.TLS_RSA_WITH_AES_128_GCM_SHA256), tlslite.CipherSuiteName(tlslite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256))
	r.fsBreakRSA(run.sessions[0], parseLabWire(labConnPkts(pk, run.sessions[0].port)), key)
	r.fsTryECDHE(run.sessions[1], parseLabWire(labConnPkts(pk, run.sessions[1].port)), key)
	return nil
}

// fsRecord runs the two sessions and waits until each is wholly recorded.
func (r *labRun) fsRecord(env *labTLSEnv) (*fsRun, error) {
	ca, err := labCA("ustack lab CA")
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue([]net.IP{net.IP(r.fam.server.Addr().AsSlice())}, nil, nil)
	if err != nil {
		return nil, err
	}
	roots := r.tlsLadder(env, ca)
	r.say("the server has one RSA-%d key pair; both sessions use it. The link is recorded (every segment's bytes)", cert.PrivateKey.N.BitLen())
	run := &fsRun{cert: cert}
	for _, s := range []struct {
		kex   string
		suite uint16
	}{{"RSA", tlslite.TLS_RSA_WITH_AES_128_GCM_SHA256}, {"ECDHE", tlslite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}} {
		r.section("session %d: %s", len(run.sessions)+1, tlslite.CipherSuiteName(s.suite))
		sess, err := r.fsSession(env, cert, roots, s.kex, s.suite)
		if err != nil {
			return nil, fmt.Errorf("%s session: %w", s.kex, err)
		}
		run.sessions = append(run.sessions, sess)
	}
	return run, nil
}

// fsSession runs one HTTPS request with the server restricted to suite.
func (r *labRun) fsSession(env *labTLSEnv, cert tlslite.Certificate, roots *x509.CertPool, kex string, suite uint16) (fsSession, error) {
	s := fsSession{kex: kex, suite: suite,
		req:  "GET /account HTTP/1.1\r\nHost: " + r.fam.host() + "\r\nCookie: session=" + kex + "-secret\r\nConnection: close\r\n\r\n",
		resp: "HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\nbalance: 1234.56 EUR"}
	srvCfg := &tlslite.Config{Certificates: []tlslite.Certificate{cert}, CipherSuites: []uint16{suite}, CurvePreferences: []tlslite.CurveID{tlslite.X25519}}
	_, srvErr := serveHTTPS(env, srvCfg, s.resp)
	obs := &labTLSObserver{r: r, client: true, draw: true}
	c, ctx, closeClient, err := env.client(&tlslite.Config{RootCAs: roots, ServerName: r.fam.server.Addr().String(), Observer: obs.observe})
	if err != nil {
		return s, err
	}
	defer closeClient()
	if err := c.Handshake(ctx); err != nil {
		return s, fmt.Errorf("TLS handshake: %w", err)
	}
	s.port = uint16(c.LocalAddr().(*net.TCPAddr).Port)
	if _, err := io.WriteString(c, s.req); err != nil {
		return s, err
	}
	body, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		return s, err
	}
	if err := <-srvErr; err != nil {
		return s, fmt.Errorf("server: %w", err)
	}
	c.Close()
	s.cliState = c.ConnectionState()
	s.keys, _ = labFind[tlslite.KeysEvent](obs)
	r.rec.WaitPkts(2*time.Second, labFINOn(s.port))
	r.say("the client read %q; the recording holds %d bytes from the client and %d from the server", firstLine(body),
		len(record.Stream(labConnPkts(r.rec.Packets(), s.port), true)), len(record.Stream(labConnPkts(r.rec.Packets(), s.port), false)))
	return s, nil
}

// fsBreakRSA decrypts the RSA session from the recording and the key.
func (r *labRun) fsBreakRSA(s fsSession, w labWire, key *rsa.PrivateKey) {
	r.section("session 1 (RSA key exchange), from the recording")
	h := w.hello()
	r.say("in the clear: client random %s, server random %s, suite %s", short(h.clientRandom), short(h.serverRandom), tlslite.CipherSuiteName(h.suite))
	var ct []byte
	cke := cryptobyte.String(labMsgBody(labMsg(w.upMsgs, wireClientKeyExchange)))
	cke.ReadUint16LengthPrefixed((*cryptobyte.String)(&ct))
	r.say("in the clear: the ClientKeyExchange, %d bytes: the pre-master secret encrypted with the server's public key", len(ct))
	pm, err := rsa.DecryptPKCS1v15(nil, key, ct)
	if err != nil {
		r.check(false, "RSA: the private key decrypts the recorded ClientKeyExchange to the client's 48-byte pre-master secret (%v)", err)
		return
	}
	r.say("the private key decrypts it: pre-master secret %s (48 bytes, 03 03 first)", short(pm))
	r.check(len(pm) == 48 && bytes.Equal(pm, s.keys.PreMasterSecret),
		"RSA: the private key decrypts the recorded ClientKeyExchange to the client's 48-byte pre-master secret")
	up, down, master, ok := r.fsDecrypt(w, h, pm)
	r.check(ok && bytes.Equal(master, s.keys.MasterSecret),
		"RSA: from it and the recorded handshake the attacker derives the session's master secret and keys")
	r.say("the recorded application data, decrypted: %q, %q", firstLine(up), labLine(up, "Cookie:"))
	r.say("    and %q … %q", firstLine(down), labLastLine(down))
	r.check(string(up) == s.req && string(down) == s.resp,
		"RSA: the recorded records decrypt to the HTTP request (cookie included) and the response: no forward secrecy")
}

// fsDecrypt derives the keys from a pre-master secret and the recorded
// handshake and decrypts both directions; ok says whether every record
// of both, Finished included, opened.
func (r *labRun) fsDecrypt(w labWire, h wireHello, pm []byte) (up, down, master []byte, ok bool) {
	var hs []byte
	if h.ems {
		hs = w.emsTranscript()
	}
	master, keys, err := tlslite.SessionKeys(h.suite, pm, h.clientRandom, h.serverRandom, hs)
	if err != nil {
		return nil, nil, nil, false
	}
	if h.ems {
		r.say("master secret = PRF(pre-master, \"extended master secret\", hash of the recorded handshake messages) = %s", short(master))
	} else {
		r.say("master secret = PRF(pre-master, \"master secret\", client random + server random) = %s", short(master))
	}
	r.say("key block = PRF(master, \"key expansion\", server random + client random): client write key %s, server write key %s", short(keys.ClientKey), short(keys.ServerKey))
	up, upFin := labDecryptCaptured(w.up, keys.ClientKey, keys.ClientIV)
	down, downFin := labDecryptCaptured(w.down, keys.ServerKey, keys.ServerIV)
	return up, down, master, upFin && downFin
}

// fsTryECDHE tries the same route on the ECDHE session and fails.
func (r *labRun) fsTryECDHE(s fsSession, w labWire, key *rsa.PrivateKey) {
	r.section("session 2 (ECDHE), from the recording")
	h := w.hello()
	ske := labParseSKE(labMsg(w.downMsgs, wireServerKeyExchange))
	r.say("in the clear: the server's ephemeral X25519 share %s, and an RSA signature over it and both randoms", short(ske.share))
	sigOK := ske.verify(&key.PublicKey, h.clientRandom, h.serverRandom) == nil
	r.say("the private key's only job here was that signature: it proves the share is the server's; it encrypted nothing")
	r.check(sigOK, "ECDHE: the server's key signed its X25519 share (the signature verifies with the certificate's public key): it authenticates, it hides nothing")
	var share []byte
	cke := cryptobyte.String(labMsgBody(labMsg(w.upMsgs, wireClientKeyExchange)))
	cke.ReadUint8LengthPrefixed((*cryptobyte.String)(&share))
	_, derr := rsa.DecryptPKCS1v15(nil, key, share)
	r.say("the RSA route: the ClientKeyExchange holds the client's %d-byte X25519 share %s; decrypting it with the private key: %v", len(share), short(share), errText(derr))
	// Forced anyway: textbook RSA on the share, the last 48 bytes taken as
	// a pre-master secret.
	forced := new(big.Int).Exp(new(big.Int).SetBytes(share), key.D, key.N).FillBytes(make([]byte, key.Size()))
	r.say("forced anyway (raw RSA, the last 48 bytes as a pre-master secret):")
	up, down, _, ok := r.fsDecrypt(w, h, forced[len(forced)-48:])
	n := labAppRecords(w.up) + labAppRecords(w.down)
	r.check(derr != nil && !ok && len(up) == 0 && len(down) == 0, "ECDHE: the RSA route fails: the ClientKeyExchange does not decrypt with the private key")
	r.say("none of the %d application-data records opens: the pre-master secret was X25519(an ephemeral private key, the other side's share), and both ephemeral keys were erased after the handshake", n)
	r.check(n >= 2 && !ok && len(up) == 0 && len(down) == 0 && !bytes.Contains(w.up, []byte("ECDHE-secret")),
		"ECDHE: the %d recorded application-data records stay opaque to the holder of the private key: forward secrecy", n)
	// The control: the lab copied the client's shared secret during the
	// handshake; with it (and only it) the same code opens the records.
	r.say("control: the ECDH secret the lab copied from the client during the handshake, %s, which the attacker never sees:", short(s.keys.PreMasterSecret))
	up, down, _, ok = r.fsDecrypt(w, h, s.keys.PreMasterSecret)
	r.say("the recorded application data, decrypted with it: %q", firstLine(up))
	r.check(ok && string(up) == s.req && string(down) == s.resp,
		"ECDHE: only the ephemeral secret, gone after the handshake, opens the records (the lab's copy decrypts them)")
}

// labMsgBody is a handshake message without its 4-byte header.
func labMsgBody(m []byte) []byte {
	if len(m) < 4 {
		return nil
	}
	return m[4:]
}

// labLine is the first line of b that starts with prefix.
func labLine(b []byte, prefix string) string {
	for _, l := range strings.Split(string(b), "\r\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func labLastLine(b []byte) string {
	s := strings.TrimRight(string(b), "\r\n")
	return s[strings.LastIndex(s, "\n")+1:]
}

// wireSKE is an ECDHE ServerKeyExchange (RFC 8422 §5.4).
type wireSKE struct {
	params, share []byte // ServerECDHParams, the public key in it
	scheme        uint16
	sig           []byte
}

func labParseSKE(m []byte) wireSKE {
	var k wireSKE
	in := cryptobyte.String(labMsgBody(m))
	start := in
	var curveType uint8
	var curve uint16
	if !in.ReadUint8(&curveType) || !in.ReadUint16(&curve) || !in.ReadUint8LengthPrefixed((*cryptobyte.String)(&k.share)) {
		return wireSKE{}
	}
	k.params = start[:len(start)-len(in)]
	if !in.ReadUint16(&k.scheme) || !in.ReadUint16LengthPrefixed((*cryptobyte.String)(&k.sig)) {
		return wireSKE{}
	}
	return k
}

// verify checks the signature over client random + server random +
// params with the scheme's hash and padding (RFC 5246 §7.4.1.4.1; PSS as
// in RFC 8446 §4.2.3).
func (k wireSKE) verify(pub *rsa.PublicKey, clientRandom, serverRandom []byte) error {
	hashes := map[uint16]crypto.Hash{0x0401: crypto.SHA256, 0x0501: crypto.SHA384, 0x0601: crypto.SHA512,
		0x0804: crypto.SHA256, 0x0805: crypto.SHA384, 0x0806: crypto.SHA512}
	hf, ok := hashes[k.scheme]
	if !ok || k.params == nil {
		return fmt.Errorf("signature scheme %#04x", k.scheme)
	}
	d := hf.New()
	d.Write(clientRandom)
	d.Write(serverRandom)
	d.Write(k.params)
	if k.scheme >= 0x0804 {
		return rsa.VerifyPSS(pub, hf, d.Sum(nil), k.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return rsa.VerifyPKCS1v15(pub, hf, d.Sum(nil), k.sig)
}
