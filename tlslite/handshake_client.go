package tlslite

// The client side of the TLS 1.2 handshake, RFC 5246 §7.3, with session
// resumption (RFC 5246 §7.3 Figure 2, RFC 5077 §3.4), RFC 7627, RFC 5746,
// RFC 6066 §3 and RFC 7301.

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

type clientHandshakeState struct {
	handshakeState
	serverHello *serverHelloMsg
	session     *ClientSessionState // offered session
	cacheKey    string
	peerCerts   []*x509.Certificate
	chains      [][]*x509.Certificate
	ticket      []byte // received NewSessionTicket
}

func (c *Conn) clientHandshake() error {
	cfg := c.config
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		return errors.New("tlslite: Config.ServerName is required unless InsecureSkipVerify is set")
	}
	hs := &clientHandshakeState{handshakeState: handshakeState{c: c}}
	if err := hs.sendClientHello(); err != nil {
		return err
	}
	if err := hs.readServerHello(); err != nil {
		return err
	}
	resumed := hs.resuming()
	if resumed {
		if err := hs.checkResumption(); err != nil {
			return err
		}
		hs.master = hs.session.masterSecret
		hs.peerCerts = hs.session.ServerCertificates
		hs.chains = hs.session.VerifiedChains
		// RFC 5246 §7.3 Figure 2: the server's Finished comes first.
		if err := hs.exchangeFinished(nil, hs.readTicketAndFinished, hs.sendFinished); err != nil {
			return err
		}
	} else {
		hs.session = nil
		if err := hs.fullHandshake(); err != nil {
			return err
		}
	}
	hs.saveSession(resumed)

	c.state.SecureRenegotiation = hs.serverHello.secureRenegotiationSupported
	c.state.NegotiatedProtocol = hs.serverHello.alpnProtocol
	c.state.PeerCertificates = hs.peerCerts
	c.state.VerifiedChains = hs.chains
	hs.complete(resumed, resumed && len(hs.hello.sessionTicket) > 0)
	return nil
}

// sendClientHello sends our offer (RFC 5246 §7.4.1.2), with a session to
// resume if the cache holds a usable one.
func (hs *clientHandshakeState) sendClientHello() error {
	cfg := hs.c.config
	h := &clientHelloMsg{
		helloMsg: helloMsg{
			vers:                         VersionTLS12,
			random:                       make([]byte, 32),
			ecPointFormats:               []uint8{0},
			extendedMasterSecret:         cfg.testHooks == nil || !cfg.testHooks.noEMS,
			secureRenegotiationSupported: true, // RFC 5746 §3.4: empty renegotiation_info
			ticketSupported:              !cfg.SessionTicketsDisabled,
		},
		compressionMethods: []uint8{0},
		supportedGroups:    cfg.curves(),
		signatureSchemes:   supportedSignatureSchemes,
		alpnProtocols:      cfg.NextProtos,
	}
	// RFC 6066 §3: literal IP addresses are not permitted in server_name.
	if cfg.ServerName != "" && net.ParseIP(cfg.ServerName) == nil {
		h.serverName = trimDot(cfg.ServerName)
	}
	for _, s := range cfg.enabledSuites() {
		h.cipherSuites = append(h.cipherSuites, s.id)
	}
	if len(h.cipherSuites) == 0 {
		return errors.New("tlslite: no cipher suites enabled")
	}
	if _, err := io.ReadFull(cfg.rand(), h.random); err != nil {
		return err
	}
	if err := hs.offerSession(h); err != nil {
		return err
	}
	hs.hello = h
	return hs.c.writeHandshake(&hs.hs, h, func(m message) Event {
		return ClientHelloEvent{message: m, Random: slices.Clone(h.random), SessionID: slices.Clone(h.sessionID),
			ServerName: h.serverName, ALPN: slices.Clone(h.alpnProtocols)}
	})
}

// offerSession offers a cached session (RFC 5246 §7.4.1.2) or ticket
// (RFC 5077 §3.4, with a fresh random session ID so that its echo tells us
// the server resumed) in h.
func (hs *clientHandshakeState) offerSession(h *clientHelloMsg) error {
	cfg := hs.c.config
	if cfg.ClientSessionCache == nil {
		return nil
	}
	hs.cacheKey = cfg.ServerName
	if hs.cacheKey == "" {
		hs.cacheKey = hs.c.serverAddr
	}
	s, ok := cfg.ClientSessionCache.Get(hs.cacheKey)
	if !ok || s == nil || !hs.usable(s) {
		return nil
	}
	switch {
	case len(s.Ticket) > 0 && !cfg.SessionTicketsDisabled:
		h.sessionTicket = s.Ticket
		h.sessionID = make([]byte, 32)
		if _, err := io.ReadFull(cfg.rand(), h.sessionID); err != nil {
			return err
		}
	case len(s.SessionID) > 0:
		h.sessionID = s.SessionID
	default:
		return nil
	}
	hs.session = s
	return nil
}

// resuming reports whether ServerHello accepted the session we offered
// (RFC 5246 §7.4.1.3: it echoes the session ID; RFC 5077 §3.4).
func (hs *clientHandshakeState) resuming() bool {
	return hs.session != nil && len(hs.serverHello.sessionID) > 0 &&
		bytes.Equal(hs.serverHello.sessionID, hs.hello.sessionID)
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

func (hs *clientHandshakeState) usable(s *ClientSessionState) bool {
	cfg := hs.c.config
	if s.Version != VersionTLS12 || len(s.masterSecret) != masterSecretLen {
		return false
	}
	if cfg.now().Sub(s.ReceivedAt) > cfg.sessionLifetime() {
		return false
	}
	suite := suiteByID(s.CipherSuite)
	if suite == nil || !slices.Contains(cfg.enabledSuites(), suite) {
		return false
	}
	if !s.ExtendedMasterSecret && !cfg.AllowNoExtendedMasterSecret {
		return false
	}
	// Re-check the leaf's validity period (the chain was verified then).
	if !cfg.InsecureSkipVerify && len(s.ServerCertificates) > 0 {
		now := cfg.now()
		if leaf := s.ServerCertificates[0]; now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			return false
		}
	}
	return true
}

// readServerHello checks ServerHello (RFC 5246 §7.4.1.3).
func (hs *clientHandshakeState) readServerHello() error {
	c := hs.c
	cfg := c.config
	sh := new(serverHelloMsg)
	raw, err := c.readHandshake(&hs.hs, typeServerHello, sh)
	if err != nil {
		return err
	}
	hs.serverHello = sh
	c.observeMessage(false, raw, func(m message) Event {
		return ServerHelloEvent{message: m, Random: slices.Clone(sh.random), CipherSuite: sh.cipherSuite,
			SessionID: slices.Clone(sh.sessionID), Resumed: hs.resuming()}
	})
	if sh.vers != VersionTLS12 {
		return c.sendAlert(AlertProtocolVersion, fmt.Errorf("server chose version %#04x", sh.vers))
	}
	c.haveVers = true
	// RFC 8446 §4.1.3: we offered TLS 1.2 only, so "DOWNGRD\x01" from a
	// TLS 1.3 server is legitimate; "DOWNGRD\x00" (TLS 1.1 or below) never
	// is with a 1.2 ServerHello.
	if string(sh.random[24:]) == downgradeTLS11 {
		return c.sendAlert(AlertIllegalParameter, errors.New("downgrade sentinel for TLS 1.1 in a TLS 1.2 ServerHello"))
	}
	if sh.compressionMethod != 0 {
		return c.sendAlert(AlertIllegalParameter, errors.New("server chose compression"))
	}
	hs.suite = suiteByID(sh.cipherSuite)
	if hs.suite == nil || !slices.Contains(hs.hello.cipherSuites, sh.cipherSuite) {
		return c.sendAlert(AlertIllegalParameter, fmt.Errorf("server chose unoffered suite %#04x", sh.cipherSuite))
	}
	// RFC 5246 §7.4.1.4: the server may only answer extensions we sent.
	for _, ext := range sh.extensions {
		switch ext {
		case extServerName:
			if hs.hello.serverName == "" {
				return c.sendAlert(AlertUnsupportedExtension, errors.New("unsolicited server_name"))
			}
		case extALPN:
			if !slices.Contains(hs.hello.alpnProtocols, sh.alpnProtocol) {
				return c.sendAlert(AlertIllegalParameter, fmt.Errorf("server chose unoffered ALPN protocol %q", sh.alpnProtocol))
			}
		case extSessionTicket:
			if !hs.hello.ticketSupported {
				return c.sendAlert(AlertUnsupportedExtension, errors.New("unsolicited session_ticket"))
			}
		case extECPointFormats:
			if !slices.Contains(sh.ecPointFormats, 0) {
				return c.sendAlert(AlertIllegalParameter, errors.New("server does not accept uncompressed points"))
			}
		case extExtendedMasterSecret, extRenegotiationInfo:
		default:
			return c.sendAlert(AlertUnsupportedExtension, fmt.Errorf("unsolicited extension %d", ext))
		}
	}
	// RFC 5746 §3.4: on the initial handshake renegotiation_info must be
	// empty.
	if sh.secureRenegotiationSupported && len(sh.secureRenegotiation) != 0 {
		return c.sendAlert(AlertHandshakeFailure, errors.New("non-empty renegotiation_info in initial ServerHello"))
	}
	// RFC 7627 §5.4: a client that requires the extension aborts without it.
	if !sh.extendedMasterSecret && !cfg.AllowNoExtendedMasterSecret {
		return c.sendAlert(AlertHandshakeFailure, errors.New("server did not negotiate the extended master secret (RFC 7627)"))
	}
	hs.serverRandom = sh.random
	hs.ems = sh.extendedMasterSecret
	hs.hs.setHash(hs.suite.hash)
	return nil
}

// checkResumption checks an abbreviated handshake's ServerHello against
// the session.
func (hs *clientHandshakeState) checkResumption() error {
	c := hs.c
	if hs.session.CipherSuite != hs.suite.id {
		return c.sendAlert(AlertIllegalParameter, errors.New("server resumed with a different cipher suite"))
	}
	// RFC 7627 §5.3.
	if hs.session.ExtendedMasterSecret != hs.ems {
		return c.sendAlert(AlertHandshakeFailure, errors.New("resumed session's extended master secret status changed"))
	}
	return nil
}

// fullHandshake is RFC 5246 §7.3 Figure 1 from the client's side.
func (hs *clientHandshakeState) fullHandshake() error {
	c := hs.c
	cfg := c.config

	pub, err := hs.readCertificate()
	if err != nil {
		return err
	}
	var preMaster, ckeBody, mine []byte
	if hs.suite.ecdhe {
		if preMaster, mine, err = hs.readServerKeyExchange(pub); err != nil {
			return err
		}
		ckeBody = append([]byte{byte(len(mine))}, mine...)
	}
	certRequested, err := hs.readServerHelloDone()
	if err != nil {
		return err
	}

	c.setBuffering()
	if certRequested {
		if err := c.writeHandshake(&hs.hs, &certificateMsg{}, func(m message) Event { return CertificateEvent{message: m} }); err != nil {
			return err
		}
	}
	var encrypted []byte // RSA key exchange: the encrypted pre-master secret
	if !hs.suite.ecdhe {
		preMaster, encrypted, err = rsaEncryptPreMaster(cfg.rand(), pub, hs.hello.vers)
		if err != nil {
			return c.sendAlert(AlertInternalError, err)
		}
		if cfg.testHooks != nil && cfg.testHooks.rsaCiphertext != nil {
			encrypted = cfg.testHooks.rsaCiphertext(pub, preMaster)
		}
		ckeBody = append([]byte{byte(len(encrypted) >> 8), byte(len(encrypted))}, encrypted...)
	}
	if err := c.writeHandshake(&hs.hs, &clientKeyExchangeMsg{body: ckeBody}, func(m message) Event {
		return ClientKeyExchangeEvent{message: m, EncryptedPreMaster: slices.Clone(encrypted), Curve: hs.curve, PublicKey: slices.Clone(mine)}
	}); err != nil {
		return err
	}
	hs.deriveMaster(preMaster)
	return hs.exchangeFinished(preMaster, hs.sendFinished, hs.readTicketAndFinished)
}

// readCertificate reads the server's Certificate (RFC 5246 §7.4.2),
// verifies the chain unless told not to, and returns the leaf's RSA key.
func (hs *clientHandshakeState) readCertificate() (*rsa.PublicKey, error) {
	c := hs.c
	cfg := c.config
	certMsg := new(certificateMsg)
	raw, err := c.readHandshake(&hs.hs, typeCertificate, certMsg)
	if err != nil {
		return nil, err
	}
	if len(certMsg.certificates) == 0 {
		return nil, c.sendAlert(AlertIllegalParameter, errors.New("server sent no certificate"))
	}
	for _, der := range certMsg.certificates {
		cert, err := parseCertificateCached(der)
		if err != nil {
			return nil, c.sendAlert(AlertBadCertificate, fmt.Errorf("parsing server certificate: %w", err))
		}
		hs.peerCerts = append(hs.peerCerts, cert)
	}
	c.observeMessage(false, raw, func(m message) Event {
		return CertificateEvent{message: m, Certificates: slices.Clone(hs.peerCerts)}
	})
	if !cfg.InsecureSkipVerify {
		chains, verr := verifyServerCertificate(hs.peerCerts, cfg.RootCAs, cfg.ServerName, cfg.now())
		if verr != nil {
			return nil, c.sendAlert(verr.alert(), verr)
		}
		hs.chains = chains
	}
	pub, ok := hs.peerCerts[0].PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, c.sendAlert(AlertUnsupportedCertificate, fmt.Errorf("server key is %T, not RSA", hs.peerCerts[0].PublicKey))
	}
	return pub, nil
}

// readServerKeyExchange reads and verifies the server's ECDHE share
// (RFC 8422 §5.4) and computes the pre-master secret with a fresh share of
// our own (§5.10), which it returns as mine.
func (hs *clientHandshakeState) readServerKeyExchange(pub *rsa.PublicKey) (preMaster, mine []byte, err error) {
	c := hs.c
	ske := new(serverKeyExchangeMsg)
	raw, err := c.readHandshake(&hs.hs, typeServerKeyExchange, ske)
	if err != nil {
		return nil, nil, err
	}
	c.observeMessage(false, raw, func(m message) Event {
		return ServerKeyExchangeEvent{message: m, Curve: ske.curve, PublicKey: slices.Clone(ske.publicKey)}
	})
	if !slices.Contains(hs.hello.supportedGroups, ske.curve) || curveFor(ske.curve) == nil {
		return nil, nil, c.sendAlert(AlertIllegalParameter, fmt.Errorf("server chose unoffered group %v", ske.curve))
	}
	if !slices.Contains(hs.hello.signatureSchemes, ske.sigScheme) {
		return nil, nil, c.sendAlert(AlertIllegalParameter, fmt.Errorf("server used unoffered signature scheme %#04x", uint16(ske.sigScheme)))
	}
	digest := ske.signedDigest(hs.hello.random, hs.serverRandom)
	if err := verifyParams(pub, ske.sigScheme, digest, ske.signature); err != nil {
		return nil, nil, c.sendAlert(AlertDecryptError, fmt.Errorf("ServerKeyExchange signature: %w", err))
	}
	curve := curveFor(ske.curve)
	peer, err := curve.NewPublicKey(ske.publicKey)
	if err != nil {
		return nil, nil, c.sendAlert(AlertIllegalParameter, fmt.Errorf("server ECDHE share: %w", err))
	}
	priv, err := curve.GenerateKey(c.config.rand())
	if err != nil {
		return nil, nil, c.sendAlert(AlertInternalError, err)
	}
	preMaster, err = priv.ECDH(peer)
	if err != nil {
		return nil, nil, c.sendAlert(AlertIllegalParameter, err)
	}
	hs.curve = ske.curve
	return preMaster, priv.PublicKey().Bytes(), nil
}

// readServerHelloDone reads an optional CertificateRequest (we have no
// client certificate and answer with an empty Certificate, RFC 5246
// §7.4.6), then ServerHelloDone (§7.4.5).
func (hs *clientHandshakeState) readServerHelloDone() (certRequested bool, err error) {
	c := hs.c
	data, err := c.readHandshakeBytes()
	if err != nil {
		return false, err
	}
	if data[0] == typeCertificateRequest {
		hs.hs.Write(data)
		certRequested = true
		c.observeMessage(false, data, func(m message) Event { return CertificateRequestEvent{m} })
		if data, err = c.readHandshakeBytes(); err != nil {
			return false, err
		}
	}
	var done serverHelloDoneMsg
	if data[0] != typeServerHelloDone {
		return false, c.sendAlert(AlertUnexpectedMessage, fmt.Errorf("got %s, want ServerHelloDone", msgName(data[0])))
	}
	if !done.unmarshal(data) {
		return false, c.sendAlert(AlertDecodeError, errors.New("malformed ServerHelloDone"))
	}
	hs.hs.Write(data)
	c.observeMessage(false, data, func(m message) Event { return ServerHelloDoneEvent{m} })
	return certRequested, nil
}

// readTicketAndFinished reads NewSessionTicket if ServerHello promised
// one (RFC 5077 §3.3: it comes before the server's ChangeCipherSpec), then
// the server's Finished.
func (hs *clientHandshakeState) readTicketAndFinished() error {
	if hs.serverHello.ticketSupported {
		c := hs.c
		m := new(newSessionTicketMsg)
		raw, err := c.readHandshake(&hs.hs, typeNewSessionTicket, m)
		if err != nil {
			return err
		}
		c.observeMessage(false, raw, func(msg message) Event {
			return NewSessionTicketEvent{message: msg, LifetimeHint: m.lifetimeHint, Ticket: slices.Clone(m.ticket)}
		})
		hs.ticket = m.ticket
	}
	return hs.readFinished()
}

// saveSession stores the session for resumption.
func (hs *clientHandshakeState) saveSession(resumed bool) {
	cfg := hs.c.config
	if cfg.ClientSessionCache == nil || hs.cacheKey == "" {
		return
	}
	if resumed && hs.ticket == nil {
		return // nothing new
	}
	cs := &ClientSessionState{
		SessionID:            hs.serverHello.sessionID,
		Ticket:               hs.ticket,
		Version:              VersionTLS12,
		CipherSuite:          hs.suite.id,
		ExtendedMasterSecret: hs.ems,
		masterSecret:         hs.master,
		ServerCertificates:   hs.peerCerts,
		VerifiedChains:       hs.chains,
		ReceivedAt:           cfg.now(),
	}
	if resumed {
		cs.ReceivedAt = hs.session.ReceivedAt
	}
	if len(cs.SessionID) == 0 && len(cs.Ticket) == 0 {
		return
	}
	cfg.ClientSessionCache.Put(hs.cacheKey, cs)
}
