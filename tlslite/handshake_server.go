package tlslite

// The server side of the TLS 1.2 handshake, RFC 5246 §7.3 (Figure 1 full,
// Figure 2 abbreviated), with RFC 5077 §3.1 (ticket flows), RFC 7627,
// RFC 5746 and RFC 7301.

import (
	"crypto/ecdh"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
)

type serverHandshakeState struct {
	handshakeState
	cert       *Certificate
	session    *sessionState // non-nil when resuming
	viaTicket  bool
	sendTicket bool
	sessionID  []byte
	alpn       string
	sigScheme  SignatureScheme
	ecdhKey    *ecdh.PrivateKey
}

func (c *Conn) serverHandshake() error {
	hs := &serverHandshakeState{handshakeState: handshakeState{c: c}}
	if err := hs.readClientHello(); err != nil {
		return err
	}
	if hs.checkForResumption() {
		// RFC 5246 §7.3 Figure 2: ServerHello, [ChangeCipherSpec], Finished
		// first, then the client's.
		if err := hs.sendServerHello(); err != nil {
			return err
		}
		hs.master = hs.session.masterSecret
		if err := hs.exchangeFinished(nil, hs.sendFinished, hs.readFinished); err != nil {
			return err
		}
	} else if err := hs.fullHandshake(); err != nil {
		return err
	}
	c.state.SecureRenegotiation = hs.hello.secureRenegotiationSupported
	c.state.NegotiatedProtocol = hs.alpn
	hs.complete(hs.session != nil, hs.viaTicket)
	return nil
}

// readClientHello reads and checks ClientHello (RFC 5246 §7.4.1.2) and
// picks everything ServerHello will say.
func (hs *serverHandshakeState) readClientHello() error {
	c := hs.c
	hs.hello = new(clientHelloMsg)
	raw, err := c.readHandshake(&hs.hs, typeClientHello, hs.hello)
	if err != nil {
		return err
	}
	h := hs.hello
	c.observeMessage(false, raw, func(m message) Event {
		return ClientHelloEvent{message: m, Random: slices.Clone(h.random), SessionID: slices.Clone(h.sessionID),
			ServerName: h.serverName, ALPN: slices.Clone(h.alpnProtocols)}
	})

	// Version: TLS 1.2 only. A TLS 1.3 client says 0x0303 in
	// legacy_version and lists 1.3 in supported_versions (RFC 8446 §4.1.2);
	// we answer with 1.2.
	if len(h.supportedVersions) > 0 {
		if !slices.Contains(h.supportedVersions, VersionTLS12) {
			return c.sendAlert(AlertProtocolVersion, errors.New("client does not support TLS 1.2"))
		}
		c.state.ClientOfferedTLS13 = slices.Contains(h.supportedVersions, versionTLS13)
	} else if h.vers < VersionTLS12 {
		return c.sendAlert(AlertProtocolVersion, fmt.Errorf("client offered version %#04x", h.vers))
	}
	c.haveVers = true

	// RFC 5246 §7.4.1.2: the null compression method must be offered.
	if !slices.Contains(h.compressionMethods, 0) {
		return c.sendAlert(AlertIllegalParameter, errors.New("client does not offer null compression"))
	}
	// RFC 5746 §3.6: on an initial handshake renegotiated_connection must
	// be empty.
	if len(h.secureRenegotiation) != 0 {
		return c.sendAlert(AlertHandshakeFailure, errors.New("non-empty renegotiation_info in initial ClientHello"))
	}

	// RFC 7301 §3.2: pick by our preference; refuse if nothing overlaps.
	if len(c.config.NextProtos) > 0 && len(h.alpnProtocols) > 0 {
		for _, p := range c.config.NextProtos {
			if slices.Contains(h.alpnProtocols, p) {
				hs.alpn = p
				break
			}
		}
		if hs.alpn == "" {
			return c.sendAlert(AlertNoApplicationProtocol, fmt.Errorf("client offered ALPN %q, we speak %q", h.alpnProtocols, c.config.NextProtos))
		}
	}
	// RFC 7627 §5.2: use the extended master secret whenever offered.
	hs.ems = h.extendedMasterSecret && (c.config.testHooks == nil || !c.config.testHooks.noEMS)

	if len(c.config.Certificates) == 0 || c.config.Certificates[0].PrivateKey == nil {
		return c.sendAlert(AlertInternalError, errors.New("server has no certificate"))
	}
	hs.cert = &c.config.Certificates[0]

	hs.serverRandom = make([]byte, 32)
	if _, err := io.ReadFull(c.config.rand(), hs.serverRandom); err != nil {
		return c.sendAlert(AlertInternalError, err)
	}
	// RFC 8446 §4.1.3: a TLS 1.3 server negotiating 1.2 sets the sentinel.
	// We only do it on request (see Config.DowngradeSentinel).
	if c.config.DowngradeSentinel && c.state.ClientOfferedTLS13 {
		copy(hs.serverRandom[24:], downgradeTLS12)
	}
	return nil
}

// pickSuite chooses by the server's preference order among the client's
// offer (RFC 5246 §7.4.1.3); ECDHE needs a common group, the uncompressed
// point format and a common signature scheme.
func (hs *serverHandshakeState) pickSuite() error {
	c := hs.c
	h := hs.hello
	ecdheOK := false
	if !(len(h.ecPointFormats) > 0 && !slices.Contains(h.ecPointFormats, 0)) {
		for _, id := range c.config.curves() {
			if curveFor(id) != nil && (len(h.supportedGroups) == 0 || slices.Contains(h.supportedGroups, id)) {
				hs.curve = id
				ecdheOK = true
				break
			}
		}
	}
	if ecdheOK {
		hs.sigScheme, ecdheOK = pickSignatureScheme(h.signatureSchemes)
	}
	for _, s := range c.config.enabledSuites() {
		if !slices.Contains(h.cipherSuites, s.id) || s.ecdhe && !ecdheOK {
			continue
		}
		hs.suite = s
		break
	}
	if hs.suite == nil {
		return c.sendAlert(AlertHandshakeFailure, errors.New("no cipher suite in common"))
	}
	if !hs.suite.ecdhe {
		hs.curve = 0
	}
	return nil
}

// checkForResumption looks up the offered ticket (RFC 5077 §3.1) or
// session ID (RFC 5246 §7.4.1.2) and decides whether to resume.
func (hs *serverHandshakeState) checkForResumption() bool {
	c := hs.c
	h := hs.hello
	var s *sessionState
	if h.ticketSupported && len(h.sessionTicket) > 0 && !c.config.SessionTicketsDisabled {
		s = c.config.openTicket(h.sessionTicket)
		hs.viaTicket = s != nil
	}
	if s == nil && len(h.sessionID) > 0 {
		if cache := c.config.server().cache; cache != nil {
			s = cache.get(string(h.sessionID))
		}
	}
	if s == nil || s.vers != VersionTLS12 {
		hs.viaTicket = false
		return false
	}
	now := c.config.now()
	created := int64(s.createdAt)
	if now.Unix()-created > int64(c.config.sessionLifetime().Seconds()) || now.Unix() < created {
		hs.viaTicket = false
		return false
	}
	// The session's suite must be offered and still enabled.
	suite := suiteByID(s.cipherSuite)
	if suite == nil || !slices.Contains(h.cipherSuites, suite.id) || !slices.Contains(c.config.enabledSuites(), suite) {
		hs.viaTicket = false
		return false
	}
	// RFC 7627 §5.3: resume only when both sides agree on EMS; otherwise
	// fall back to a full handshake (which "aborts" the abbreviated one).
	if s.ems != hs.ems {
		hs.viaTicket = false
		return false
	}
	hs.session = s
	hs.suite = suite
	hs.ems = s.ems
	hs.sessionID = h.sessionID // RFC 5077 §3.4: echo the client's ID
	return true
}

func (hs *serverHandshakeState) sendServerHello() error {
	c := hs.c
	h := hs.hello
	m := &serverHelloMsg{
		helloMsg: helloMsg{
			vers:                 VersionTLS12,
			random:               hs.serverRandom,
			sessionID:            hs.sessionID,
			extendedMasterSecret: hs.ems,
			ticketSupported:      hs.sendTicket,
			// RFC 5746 §3.6: echo an empty renegotiation_info if the
			// client signalled support (extension or SCSV).
			secureRenegotiationSupported: h.secureRenegotiationSupported,
		},
		cipherSuite:  hs.suite.id,
		alpnProtocol: hs.alpn,
		// RFC 6066 §3: an empty server_name acknowledges SNI (full
		// handshakes only).
		serverNameAck: h.serverName != "" && hs.session == nil,
	}
	// RFC 4492 §5.2: ec_point_formats when an ECC suite is chosen and the
	// client sent the extension.
	if hs.suite.ecdhe && len(h.ecPointFormats) > 0 {
		m.ecPointFormats = []uint8{0}
	}
	hs.hs.setHash(hs.suite.hash)
	return c.writeHandshake(&hs.hs, m, func(msg message) Event {
		return ServerHelloEvent{message: msg, Random: slices.Clone(hs.serverRandom), CipherSuite: hs.suite.id,
			SessionID: slices.Clone(hs.sessionID), Resumed: hs.session != nil}
	})
}

// fullHandshake is RFC 5246 §7.3 Figure 1 from the server's side.
func (hs *serverHandshakeState) fullHandshake() error {
	c := hs.c
	h := hs.hello
	if err := hs.pickSuite(); err != nil {
		return err
	}
	// Session ID or ticket for later resumption.
	hs.sendTicket = h.ticketSupported && !c.config.SessionTicketsDisabled
	if hs.sendTicket || c.config.server().cache != nil {
		hs.sessionID = make([]byte, 32)
		if _, err := io.ReadFull(c.config.rand(), hs.sessionID); err != nil {
			return c.sendAlert(AlertInternalError, err)
		}
	}
	c.setBuffering()
	if err := hs.sendServerHello(); err != nil {
		return err
	}
	// RFC 5246 §7.4.2: Certificate.
	if err := c.writeHandshake(&hs.hs, &certificateMsg{certificates: hs.cert.Chain}, func(m message) Event {
		return CertificateEvent{message: m, Certificates: leafChain(hs.cert)}
	}); err != nil {
		return err
	}
	// RFC 8422 §5.4: ServerKeyExchange for ECDHE only.
	if hs.suite.ecdhe {
		key, err := curveFor(hs.curve).GenerateKey(c.config.rand())
		if err != nil {
			return c.sendAlert(AlertInternalError, err)
		}
		hs.ecdhKey = key
		ske := &serverKeyExchangeMsg{curve: hs.curve, publicKey: key.PublicKey().Bytes(), sigScheme: hs.sigScheme}
		digest := ske.signedDigest(h.random, hs.serverRandom)
		ske.signature, err = signParams(c.config.rand(), hs.cert.PrivateKey, hs.sigScheme, digest)
		if err != nil {
			return c.sendAlert(AlertInternalError, err)
		}
		if err := c.writeHandshake(&hs.hs, ske, func(m message) Event {
			return ServerKeyExchangeEvent{message: m, Curve: hs.curve, PublicKey: slices.Clone(ske.publicKey)}
		}); err != nil {
			return err
		}
	}
	// RFC 5246 §7.4.5: ServerHelloDone ends the flight.
	if err := c.writeHandshake(&hs.hs, &serverHelloDoneMsg{}, func(m message) Event { return ServerHelloDoneEvent{m} }); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}

	preMaster, err := hs.readClientKeyExchange()
	if err != nil {
		return err
	}
	hs.deriveMaster(preMaster)
	return hs.exchangeFinished(preMaster, hs.readFinished, hs.saveSessionAndFinish)
}

// saveSessionAndFinish keeps the new session for resumption, in a ticket
// (RFC 5077 §3.3: NewSessionTicket before ChangeCipherSpec) or in the
// session-ID cache, then sends our Finished.
func (hs *serverHandshakeState) saveSessionAndFinish() error {
	c := hs.c
	state := &sessionState{vers: VersionTLS12, cipherSuite: hs.suite.id, ems: hs.ems,
		createdAt: uint64(c.config.now().Unix()), masterSecret: hs.master}
	if hs.sendTicket {
		ticket, err := c.config.sealTicket(state)
		if err != nil {
			return c.sendAlert(AlertInternalError, err)
		}
		c.setBuffering()
		nst := &newSessionTicketMsg{lifetimeHint: uint32(c.config.sessionLifetime().Seconds()), ticket: ticket}
		if err := c.writeHandshake(&hs.hs, nst, func(m message) Event {
			return NewSessionTicketEvent{message: m, LifetimeHint: nst.lifetimeHint, Ticket: slices.Clone(ticket)}
		}); err != nil {
			return err
		}
	} else if cache := c.config.server().cache; cache != nil && len(hs.sessionID) > 0 {
		cache.put(string(hs.sessionID), state)
	}
	return hs.sendFinished()
}

// readClientKeyExchange reads ClientKeyExchange (RFC 5246 §7.4.7) and
// returns the pre-master secret: the ECDH shared secret (RFC 8422 §5.10)
// or the decrypted RSA one (RFC 5246 §7.4.7.1).
func (hs *serverHandshakeState) readClientKeyExchange() ([]byte, error) {
	c := hs.c
	cke := new(clientKeyExchangeMsg)
	raw, err := c.readHandshake(&hs.hs, typeClientKeyExchange, cke)
	if err != nil {
		return nil, err
	}
	var preMaster, pub, ct []byte
	if hs.suite.ecdhe {
		var ok bool
		if pub, ok = cke.ecdhPublic(); !ok {
			return nil, c.sendAlert(AlertDecodeError, errors.New("malformed ECDHE ClientKeyExchange"))
		}
		peer, err := curveFor(hs.curve).NewPublicKey(pub)
		if err != nil {
			return nil, c.sendAlert(AlertIllegalParameter, fmt.Errorf("client ECDHE share: %w", err))
		}
		preMaster, err = hs.ecdhKey.ECDH(peer)
		if err != nil {
			return nil, c.sendAlert(AlertIllegalParameter, fmt.Errorf("ECDH: %w", err))
		}
	} else {
		var ok bool
		if ct, ok = cke.rsaCiphertext(); !ok {
			// The framing is public; only the content must not leak.
			return nil, c.sendAlert(AlertDecodeError, errors.New("malformed RSA ClientKeyExchange"))
		}
		preMaster, err = rsaPreMasterSecret(c.config.rand(), hs.cert.PrivateKey, ct, hs.hello.vers)
		if err != nil {
			return nil, c.sendAlert(AlertInternalError, err)
		}
	}
	c.observeMessage(false, raw, func(m message) Event {
		return ClientKeyExchangeEvent{message: m, EncryptedPreMaster: slices.Clone(ct), Curve: hs.curve, PublicKey: slices.Clone(pub)}
	})
	return preMaster, nil
}

func leafChain(cert *Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range cert.Chain {
		if x, err := x509.ParseCertificate(der); err == nil {
			out = append(out, x)
		}
	}
	return out
}
